#!/usr/bin/env bash
# Runs the README's quick start as written, as the current user, and fails unless the run ends
# `succeeded` after one fix and the fix is merged. The shell block is read from README.md: the
# lines before "# in another terminal, from this repository:" and after the server's line run
# in one shell (the reader's terminal), the server's line in the background from this
# repository (a copy of its scripts, so that its own ./.slipway is untouched). SLIPWAY_BIN (a
# built slipway; default target/debug/slipway) is handed to serve.sh instead of a release build. Every wait is bounded (QUICKSTART_TIMEOUT seconds, default 300).
# The demo directory must not exist yet; QUICKSTART_CLEAN=1 removes one of this user's.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
limit=${QUICKSTART_TIMEOUT:-300}
health=http://127.0.0.1:8080/health

block=$(awk '/^## Quick start/ {q = 1} q && /^```sh$/ {b = 1; next} b && /^```$/ {exit} b' README.md)
marker='# in another terminal, from this repository:'
case $block in *"$marker"*) ;; *) echo "quickstart-check: no server line in the README's quick start" >&2; exit 2 ;; esac
setup=${block%%"$marker"*}
rest=${block#*"$marker"}
rest=${rest#$'\n'}
serve=${rest%%$'\n'*}
client=${rest#*$'\n'}
demo=$(sed -n 's/^D=\([^ ;&]*\).*/\1/p' <<<"$setup" | head -n 1)
[ -n "$demo" ] || { echo "quickstart-check: the quick start sets no D=" >&2; exit 2; }

if [ -e "$demo" ]; then
  if [ "${QUICKSTART_CLEAN:-}" = 1 ] && [ -O "$demo" ]; then
    rm -rf -- "$demo"
  else
    echo "quickstart-check: $demo exists; remove it (or QUICKSTART_CLEAN=1 for one of yours)" >&2
    exit 2
  fi
fi
if curl -s -o /dev/null "$health"; then
  echo "quickstart-check: something already listens on 127.0.0.1:8080" >&2
  exit 2
fi

work=$(mktemp -d)
server=
finish() {
  if [ -n "$server" ]; then
    # The server's own process group (setsid below): serve.sh, slipway, the cells it started.
    kill -TERM -- "-$server" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$server" 2>/dev/null || true
  fi
  rm -rf -- "$work"
}
trap finish EXIT

# "In another terminal, from this repository": from a copy of its scripts, so that ./.slipway
# is a fresh one (a first start) and the repository's own is untouched.
export SLIPWAY_BIN=${SLIPWAY_BIN:-$repo/target/debug/slipway}
[ -x "$SLIPWAY_BIN" ] || { echo "quickstart-check: no slipway at $SLIPWAY_BIN (cargo build -p slipway, or set SLIPWAY_BIN)" >&2; exit 2; }
mkdir -p "$work/checkout"
cp -R "$repo/scripts" "$work/checkout/"
(cd "$work/checkout" && exec setsid bash -c "$serve") >"$work/serve.log" 2>&1 </dev/null &
server=$!
up=
for _ in $(seq $((limit * 5))); do
  if curl -s -o /dev/null "$health"; then up=1; break; fi
  kill -0 "$server" 2>/dev/null || break
  sleep 0.2
done
if [ -z "$up" ]; then
  echo "quickstart-check: the server did not start:" >&2
  cat "$work/serve.log" >&2
  exit 1
fi

# The reader's terminal: the README's lines as written, then the checks (they use its D, API
# and AUTH). The README's own `sleep 10` may be too short on a busy machine: wait for the end.
check='
echo "--- quickstart-check"
for _ in $(seq '"$((limit * 2))"'); do
  run=$(curl -s -H "$AUTH" $API/runs/1)
  case $run in *"\"status\":\"succeeded\""*|*"\"status\":\"failed\""*|*"\"status\":\"cancelled\""*) break ;; esac
  sleep 0.5
done
echo "run: $run"
case $run in *"\"status\":\"succeeded\""*) ;; *) echo "FAIL: the run did not succeed"; exit 1 ;; esac
case $run in *"\"fix_attempts\":1"*) ;; *) echo "FAIL: not exactly one fix attempt"; exit 1 ;; esac
merged=$(git -C $D/repo.git show main:greeting.txt)
[ "$merged" = "hello, world" ] || { echo "FAIL: main has \"$merged\", not the fix"; exit 1; }
curl -s -H "$AUTH" "$API/validations/1/logs" > '"$work/validation.json"'
'
set +e
mkdir -p "$work/terminal"
(cd "$work/terminal" && timeout "$limit" bash -eo pipefail -c "$setup"$'\n'"$client"$'\n'"$check") >"$work/client.log" 2>&1
status=$?
set -e
cat "$work/client.log"
if [ $status -ne 0 ]; then
  echo "quickstart-check: FAILED (exit $status); the server's log:" >&2
  cat "$work/serve.log" >&2
  exit 1
fi

# Without a cgroup it may make, Slipway says once that quotas are not enforced, and the
# validation's log says so too.
warnings=$(grep -c 'quotas are not enforced' "$work/serve.log" || true)
if grep -q 'quotas are not enforced' "$work/validation.json"; then
  if [ "$warnings" -ne 1 ]; then
    echo "quickstart-check: quotas are not enforced, and the server said so $warnings times (once expected):" >&2
    cat "$work/serve.log" >&2
    exit 1
  fi
  echo "quickstart-check: memory and process quotas were not enforced (said once, and in the validation's log)"
elif [ "$warnings" -ne 0 ]; then
  echo "quickstart-check: the server warned of unenforced quotas, the validation's log does not say so" >&2
  exit 1
fi
echo "quickstart-check: passed as $(id -un): the run succeeded after one fix, and the fix is merged"
