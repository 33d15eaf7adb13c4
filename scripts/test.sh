#!/usr/bin/env bash
# Runs Slipway's whole test suite. Installs what a fresh machine lacks first
# (only when it is missing, and only where apt-get can be used).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v git >/dev/null 2>&1 || need_apt+=(git)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
command -v bwrap >/dev/null 2>&1 || need_apt+=(bubblewrap)
# pasta gives sandboxes outbound network without the host's loopback.
command -v pasta >/dev/null 2>&1 || need_apt+=(passt)
# The dashboard's end-to-end tests drive headless Chromium.
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
  || [ -n "${SLIPWAY_CHROMIUM:-}" ] || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
  else
    echo "missing: ${need_apt[*]}; install them and run again" >&2
    exit 1
  fi
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi

profile=default
[ "${CI:-}" = true ] && profile=ci
cargo nextest run --workspace --profile "$profile" "$@"
