#!/usr/bin/env bash
# Validation pipeline benchmarks (release build, real git, real processes):
#  1. orchestration overhead: `slipway validate` of a commit whose commands are all `true`;
#  2. 50 validations of a trivial project submitted at once to `slipway serve`;
#  3. snapshot restore vs a cold `npm ci` of a real lockfile (express: ~65 packages);
#  4. a second `slipway validate` of that project with the persistent cache vs the first;
#  5. the cost of merging onto the base at checkout, on a repository of 10,000 files.
# Usage: bench/pipeline.sh   (needs git, python3, node/npm and the npm registry)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p slipway
bin=$PWD/target/release/slipway
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$work"' EXIT
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=b@b GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=b@b
ms() { echo $(( $(date +%s%N) / 1000000 )); }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# 1. Orchestration overhead.
trivial=$work/trivial
mkdir "$trivial" && git -C "$trivial" init -q -b main
printf '[setup]\ncommands = ["true"]\n[build]\ncommands = ["true"]\n[test]\ncommands = ["true"]\n' > "$trivial/.slipway.toml"
git -C "$trivial" add -A && git -C "$trivial" commit -qm trivial
times=()
for _ in $(seq 10); do
  t0=$(ms); "$bin" validate "$trivial" 2>/dev/null; t1=$(ms); times+=($((t1 - t0)))
done
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
echo "1. all-true validation via 'slipway validate' (10 runs): min $(head -1 <<<"$sorted") ms, median $(sed -n 5p <<<"$sorted") ms, max $(tail -1 <<<"$sorted") ms"

# A server for 2 and 3.
data=$work/data; port=$((20000 + RANDOM % 20000)); token=bench-admin-token-0123456789
concurrency=${SLIPWAY_MAX_CONCURRENT_VALIDATIONS:-2}
SLIPWAY_ADMIN_TOKEN=$token SLIPWAY_DATA_DIR=$data SLIPWAY_LOG=warn SLIPWAY_MAX_CONCURRENT_VALIDATIONS=$concurrency \
  "$bin" serve --bind 127.0.0.1:$port >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
api() { curl -sf -H "Authorization: Bearer $token" -H 'content-type: application/json' "$@"; }
base=http://127.0.0.1:$port/api/v1
project() { api -d "{\"name\":\"$1\",\"repo\":\"$2\"}" "$base/projects" | json 'd["id"]'; }
wait_final() { # validation id → prints the record
  while :; do
    record=$(api "$base/validations/$1")
    case $(json 'd["status"]' <<<"$record") in queued|running) sleep 0.05;; *) echo "$record"; return;; esac
  done
}

# 2. Fifty at once.
p=$(project trivial "$trivial")
sha=$(git -C "$trivial" rev-parse HEAD)
rss_before=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
t0=$(ms)
seq 50 | xargs -P 50 -I{} curl -sf -o /dev/null -H "Authorization: Bearer $token" \
  -H 'content-type: application/json' -d "{\"sha\":\"$sha\"}" "$base/projects/$p/validations"
while api "$base/projects/$p/validations?limit=50" | grep -q -E '"status":"(queued|running)"'; do sleep 0.02; done
t1=$(ms)
api "$base/projects/$p/validations?limit=50" > "$work/all.json"
python3 - "$work/all.json" <<'PY'
import json, sys
from datetime import datetime
rows = json.load(open(sys.argv[1]))
spans = []
for v in rows:
    assert v["status"] == "passed", v
    steps = [s for s in v["steps"] if s.get("started_at")]
    start = min(datetime.fromisoformat(s["started_at"].replace("Z", "+00:00")) for s in steps)
    end = max(datetime.fromisoformat(s["finished_at"].replace("Z", "+00:00")) for s in steps)
    spans.append((start, end))
most = max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)
print(f"   all {len(rows)} passed; most running at once: {most}")
PY
echo "2. 50 validations submitted at once (max $concurrency concurrent): total $((t1 - t0)) ms; server RSS $rss_before kB before, peak (VmHWM) $(awk '/VmHWM/ {print $2}' /proc/$pid/status) kB"

# 3. Snapshot restore vs cold setup.
npm_repo=$work/npm
mkdir "$npm_repo" && git -C "$npm_repo" init -q -b main
(cd "$npm_repo" && npm init -y >/dev/null 2>&1 && npm install --silent --no-audit --no-fund express@4 >/dev/null 2>&1 && rm -rf node_modules)
printf 'node_modules/\n.npm/\n' > "$npm_repo/.gitignore"
printf '[setup]\ncommands = ["npm ci --no-audit --no-fund"]\ncache_key = ["package-lock.json"]\n[test]\ncommands = ["node -e \\"require(\x27express\x27); console.log(\x27express loads\x27)\\""]\n' > "$npm_repo/.slipway.toml"
git -C "$npm_repo" add -A && git -C "$npm_repo" commit -qm npm
packages=$(python3 -c "import json; print(len([k for k in json.load(open('$npm_repo/package-lock.json'))['packages'] if k]))")
p=$(project npm "$npm_repo")
setup_ms() { json '[s for s in d["steps"] if s["name"]=="setup"][0]["duration_ms"]'; }
cold=$(api -d '{"branch":"main"}' "$base/projects/$p/validations" | json 'd["id"]')
cold_record=$(wait_final "$cold")
[ "$(json 'd["status"]' <<<"$cold_record")" = passed ] || { echo "cold validation failed: $cold_record"; exit 1; }
echo "change" > "$npm_repo/CHANGE" && git -C "$npm_repo" add -A && git -C "$npm_repo" commit -qm change
warm=$(api -d '{"branch":"main"}' "$base/projects/$p/validations" | json 'd["id"]')
warm_record=$(wait_final "$warm")
[ "$(json 'd["status"]' <<<"$warm_record")" = passed ] || { echo "warm validation failed: $warm_record"; exit 1; }
c=$(setup_ms <<<"$cold_record"); w=$(setup_ms <<<"$warm_record")
echo "3. setup of $packages npm packages: cold 'npm ci' $c ms; restored from snapshot $w ms; $(python3 -c "print(f'{$c/max($w,1):.1f}')")x faster"
echo "   $(json '[s for s in d["steps"] if s["name"]=="setup"][0]["detail"]' <<<"$warm_record")"

# 4. The CLI's persistent snapshot cache: a second `slipway validate` against the first.
cache=$work/cache
cli_setup_ms() { XDG_CACHE_HOME=$cache "$bin" validate "$npm_repo" --json 2>/dev/null | setup_ms; }
first=$(cli_setup_ms); second=$(cli_setup_ms)
echo "4. 'slipway validate' of the npm project: setup $first ms the first time, $second ms the second (persistent cache); $(python3 -c "print(f'{$first/max($second,1):.1f}')")x faster"

# 5. Merging onto the base at checkout, 10,000 files: checkout of the head alone vs merged.
big=$work/big
mkdir "$big" && git -C "$big" init -q -b main
python3 - "$big" <<'PY'
import os, sys
root = sys.argv[1]
for i in range(10_000):
    d = os.path.join(root, f"src/m{i // 100:03d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:05d}.txt"), "w") as f:
        f.write(f"file {i}\n" * 20)
PY
printf '[test]\ncommands = ["true"]\n' > "$big/.slipway.toml"
git -C "$big" add -A && git -C "$big" commit -qm "10k files"
git -C "$big" checkout -q -b feature && echo changed >> "$big/src/m000/f00000.txt" && git -C "$big" commit -qam feature
git -C "$big" checkout -q main && echo moved >> "$big/src/m099/f09999.txt" && git -C "$big" commit -qam "main moves on"
checkout_ms() { "$bin" validate "$big" --no-cache --json "$@" 2>/dev/null | json 'd["steps"][0]["duration_ms"]'; }
median() { sort -n | sed -n "$(( ($1 + 1) / 2 ))p"; }
alone=$(for _ in $(seq 9); do checkout_ms --branch feature; done | median 9)
merged=$(for _ in $(seq 9); do checkout_ms --branch feature --base main; done | median 9)
echo "5. checkout step of a 10,000-file repository, median of 9: head alone $alone ms, merged onto the base $merged ms (writing 10,000 files dominates and varies with the disk)"
# What merging adds, alone: the git commands the checkout runs for it, in a clone holding both.
clone=$work/big-clone
git clone -q --no-local --no-checkout "$big" "$clone"
head=$(git -C "$big" rev-parse feature); base_head=$(git -C "$big" rev-parse main)
merge_ms=()
for _ in $(seq 20); do
  t0=$(date +%s%N)
  git ls-remote --heads "$big" refs/heads/main >/dev/null
  git -C "$clone" cat-file -e "$base_head^{commit}"
  tree=$(git -C "$clone" merge-tree --write-tree --name-only --no-messages "$base_head" "$head")
  git -C "$clone" -c user.name=Slipway -c user.email=s@localhost commit-tree "$tree" -p "$base_head" -p "$head" -m merge >/dev/null
  t1=$(date +%s%N); merge_ms+=($(( (t1 - t0) / 100000 )))
done
echo "   merging onto the base itself (ls-remote, merge-tree, commit-tree), median of 20: $(printf '%s\n' "${merge_ms[@]}" | median 20 | sed 's/\(.\)$/.\1/') ms"
