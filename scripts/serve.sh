#!/usr/bin/env bash
# Runs `slipway serve` on its embedded defaults. Pull-request code runs only in a sandbox, so
# this installs what the sandbox needs first when it is missing (bubblewrap, and passt for
# outbound network), where apt-get can be used; elsewhere it says what to install.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v git >/dev/null 2>&1 || need_apt+=(git)
command -v bwrap >/dev/null 2>&1 || need_apt+=(bubblewrap)
command -v pasta >/dev/null 2>&1 || need_apt+=(passt)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
  else
    echo "missing: ${need_apt[*]}; install them (Debian/Ubuntu: sudo apt-get install ${need_apt[*]}) and run again" >&2
    exit 1
  fi
fi
exec cargo run --release -p slipway -- serve "$@"
