#!/usr/bin/env bash
# MCP benchmarks (release build, real git, sandbox on): a trivial validation (setup, build and
# test all `true`) through `slipway mcp` against the same through `slipway validate`, and
# `tools/list`. The client is the official Python MCP client (scripts/mcp-client.sh).
# Usage: bench/mcp.sh [RUNS]   (default 10; SLIPWAY_BIN=PATH measures that binary instead)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
if [ -z "${SLIPWAY_BIN:-}" ]; then
  cargo build --release -q -p slipway
fi
bin=${SLIPWAY_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release/slipway}
python=$(./scripts/mcp-client.sh)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=b@b GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=b@b
export XDG_CACHE_HOME=$work/cache
unset SLIPWAY_DATA_DIR
trivial=$work/trivial
mkdir "$trivial" && git -C "$trivial" init -q -b main
printf '[setup]\ncommands = ["true"]\n[build]\ncommands = ["true"]\n[test]\ncommands = ["true"]\n' > "$trivial/.slipway.toml"
git -C "$trivial" add -A && git -C "$trivial" commit -qm trivial

ms() { echo $(( $(date +%s%N) / 1000000 )); }
"$bin" validate "$trivial" 2>/dev/null # warm the cache
times=()
for _ in $(seq "$runs"); do
  t0=$(ms); "$bin" validate "$trivial" 2>/dev/null; t1=$(ms); times+=($((t1 - t0)))
done
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
echo "slipway validate ($runs runs, whole process): min $(head -1 <<<"$sorted") ms, median $(sed -n "$(( (runs + 1) / 2 ))p" <<<"$sorted") ms, max $(tail -1 <<<"$sorted") ms"
"$python" bench/mcp_client.py "$bin" "$trivial" "$runs"
