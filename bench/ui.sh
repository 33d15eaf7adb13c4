#!/usr/bin/env bash
# The ui step's own cost (release build, real Chromium in the sandbox, a fixture app):
#  1. browser ready: Chromium started in the validation's cell until DevTools answers;
#  2. one-page check on a warm browser (median of the checks after the first);
#  3. 10 checks in two viewports: the whole ui step.
# Usage: bench/ui.sh   (needs chromium, python3, bubblewrap)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p slipway
bin=$PWD/target/release/slipway
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=b@b GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=b@b
app=$work/app
mkdir "$app" && git -C "$app" init -q -b main
cat > "$app/app.py" <<'PY'
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("<title>Page %s</title><h1>Page %s</h1><p>ready</p>" % (self.path, self.path)).encode()
        self.send_response(200); self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
PY
{
  printf '[service]\nstart = "python3 app.py"\n[ui]\nviewports = ["1280x800", "390x844"]\n'
  for i in 1 2 3 4 5; do printf '[[ui.checks]]\nname = "page %s"\npath = "/p%s"\nexpect_text = "ready"\n' "$i" "$i"; done
} > "$app/.slipway.toml"
git -C "$app" add -A && git -C "$app" commit -qm app
for run in 1 2 3; do
  "$bin" validate "$app" --json 2>/dev/null > "$work/report-$run.json" || { echo "validation failed"; cat "$work/report-$run.json"; exit 1; }
done
python3 - "$work"/report-*.json <<'PY'
import json, re, statistics, sys
ready, warm, step = [], [], []
for path in sys.argv[1:]:
    report = json.load(open(path))
    ui = [s for s in report["steps"] if s["name"] == "ui"][0]
    assert ui["status"] == "passed", ui
    step.append(ui["duration_ms"])
    tail = ui["log_tail"]
    ready += [int(m) for m in re.findall(r"browser ready in (\d+) ms", ui.get("detail") or "")]
    checks = [int(m) for m in re.findall(r"✓ page \d \(\d+x\d+\) in (\d+) ms", tail)]
    warm += checks[1:]
print(f"1. browser ready (Chromium in the cell, DevTools answering): median {statistics.median(ready) if ready else 'n/a'} ms over {len(ready)} runs")
print(f"2. one-page check on a warm browser: median {statistics.median(warm)} ms over {len(warm)} checks")
print(f"3. 10 checks in two viewports, the whole ui step: median {statistics.median(step)} ms over {len(step)} runs")
PY
