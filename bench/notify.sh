#!/usr/bin/env bash
# Does a burst of 1,000 notifications slow validations (issue 25)? `slipway serve` (release
# build, SQLite) with a project "burst" of 20 webhook targets (every validation of it makes 20
# notifications) and a project "probe" with none, both validating a trivial commit. A local
# receiver (Python, 127.0.0.1, allowed by SLIPWAY_NOTIFY_ALLOW_HOSTS) answers each delivery after
# 250 ms, so the burst takes a while to drain (4 notifications are sent at once).
#  1. before: 10 validations of "probe", one after another (nothing queued);
#  2. baseline: 50 validations of "quiet" (no targets) POSTed at once;
#  3. the burst: 50 validations of "burst" POSTed at once → 1,000 queued notifications;
#  4. during: as soon as those validations ended, 10 more of "probe" while the notifications
#     are still being delivered; the receiver's count before and after shows they were;
#  5. after: once all are delivered, 10 more of "probe" (the same machine load, nothing queued).
# Usage: bench/notify.sh   (SLIPWAY_BIN=path to use a built binary)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${SLIPWAY_BIN:-}" ]; then
  cargo build --release -q -p slipway
  SLIPWAY_BIN=$PWD/target/release/slipway
fi
work=$(mktemp -d /var/tmp/slipway-notify.XXXXXX)
pid= receiver=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; [ -n "$receiver" ] && kill $receiver 2>/dev/null; rm -rf "$work"' EXIT
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=b@b GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=b@b
ms() { echo $(( $(date +%s%N) / 1000000 )); }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

rport=$((20000 + RANDOM % 20000))
cat > "$work/receiver.py" <<'EOF'
import http.server, sys, threading, time
count = 0
lock = threading.Lock()
class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        global count
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        time.sleep(0.25)
        with lock:
            count += 1
        self.send_response(204)
        self.end_headers()
    def do_GET(self):
        body = str(count).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
EOF
python3 "$work/receiver.py" $rport & receiver=$!
delivered() { curl -sf "http://127.0.0.1:$rport/count"; }

repo() {
  local dir=$work/$1
  mkdir -p "$dir" && git -C "$dir" init -q -b main
  printf '[test]\ncommands = ["true"]\n' > "$dir/.slipway.toml"
  git -C "$dir" add -A && git -C "$dir" commit -qm "$1"
  echo "$dir"
}

data=$work/data; port=$((20000 + RANDOM % 20000)); token=bench-admin-token-0123456789
SLIPWAY_ADMIN_TOKEN=$token SLIPWAY_DATA_DIR=$data SLIPWAY_LOG=warn \
  SLIPWAY_NOTIFY_ALLOW_HOSTS=127.0.0.1 SLIPWAY_MAX_CONCURRENT_VALIDATIONS=2 \
  "$SLIPWAY_BIN" serve --bind 127.0.0.1:$port >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
api() { curl -sf -H "Authorization: Bearer $token" -H 'content-type: application/json' "$@"; }
base=http://127.0.0.1:$port/api/v1
project() { api -d "{\"name\":\"$1\",\"repo\":\"$(repo "$1")\"}" "$base/projects" | json 'd["id"]'; }
wait_for() { # validation id
  while :; do
    case $(api "$base/validations/$1" | json 'd["status"]') in queued|running) sleep 0.02;; *) break;; esac
  done
}
probe_runs() { # prints the 10 durations in ms, sorted
  for _ in $(seq 10); do
    local t0 id; t0=$(ms)
    id=$(api -d '{"branch":"main"}' "$base/projects/$probe/validations" | json 'd["id"]')
    wait_for "$id"
    echo $(( $(ms) - t0 ))
  done | sort -n | tr '\n' ' '
}
median() { echo "$1" | tr ' ' '\n' | sed '/^$/d' | sort -n | awk '{a[NR]=$1} END {print (a[int((NR+1)/2)] + a[int((NR+2)/2)]) / 2}'; }

probe=$(project probe)
quiet=$(project quiet)
burst=$(project burst)
for _ in $(seq 20); do
  api -d "{\"kind\":\"webhook\",\"url\":\"http://127.0.0.1:$rport/hook\",\"events\":[\"validation.finished\"]}" \
    "$base/projects/$burst/notifications" >/dev/null
done
probe_runs >/dev/null # warm-up

before=$(probe_runs)
echo "1. before: probe validations (ms): $before (median $(median "$before"))"

fifty() { # project → ms until 50 validations POSTed at once have ended
  local t0 ids=() id; t0=$(ms)
  for _ in $(seq 50); do
    ids+=("$(api -d '{"branch":"main"}' "$base/projects/$1/validations" | json 'd["id"]')")
  done
  for id in "${ids[@]}"; do wait_for "$id"; done
  echo $(( $(ms) - t0 ))
}
echo "2. baseline: 50 validations of 'quiet' (no targets) at once ended in $(fifty "$quiet") ms"
t0=$(ms)
took=$(fifty "$burst")
echo "3. burst: 50 validations of 'burst' (20 targets each) at once ended in $took ms; notifications delivered so far: $(delivered) of 1000"

at_start=$(delivered)
during=$(probe_runs)
at_end=$(delivered)
echo "4. during: probe validations (ms): $during (median $(median "$during")); the receiver got $at_start → $at_end of 1000 meanwhile"
for _ in $(seq 900); do [ "$(delivered)" -ge 1000 ] && break; sleep 0.2; done
echo "   all $(delivered) delivered $(( $(ms) - t0 )) ms after the burst began; server peak RSS $(awk '/VmHWM/ {print $2}' /proc/$pid/status) kB"
after=$(probe_runs)
echo "5. after (the queue empty again): probe validations (ms): $after (median $(median "$after"))"
