#!/usr/bin/env bash
# Prepares the MCP client the tests drive Slipway's MCP server with: the official Python SDK
# (`mcp` from PyPI, pinned), in a virtual environment under the target directory. Prints the
# environment's python. Safe to run at once from several tests (one installs, the others wait).
set -euo pipefail
cd "$(dirname "$0")/.."
MCP_VERSION=2.3.0
target=${CARGO_TARGET_DIR:-$PWD/target}
venv="$target/mcp-client-venv-$MCP_VERSION"
mkdir -p "$target"
if ! python3 -c "import ensurepip" 2>/dev/null; then
  # Debian splits venv's pip bootstrap into python3-venv.
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
  else
    echo "python3's venv module is missing: install python3-venv" >&2
    exit 1
  fi
fi
exec 9>"$target/.mcp-client.lock"
flock 9
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import mcp" 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "mcp==$MCP_VERSION" >&2
fi
echo "$venv/bin/python"
