#!/usr/bin/env bash
# As root (CI): runs what most people run as an ordinary user, as one. Creates the user
# (SLIPWAY_CI_USER, default slipway-ci) when missing, builds here as root, copies what the
# user needs somewhere it may read (this checkout may be under /root), then as that user
# (a) runs the sandbox crate's tests (a nextest archive: one process per test, as
#     ./scripts/test.sh runs them), and
# (b) runs the README's quick start as written (scripts/quickstart-check.sh).
# Each part is bounded by a timeout, so that it can never hang CI.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "unprivileged-check: run as root (it creates a user and runs as it)" >&2
  exit 2
fi
user=${SLIPWAY_CI_USER:-slipway-ci}
./scripts/install-missing.sh git:git curl:curl python3:python3 bwrap:bubblewrap pasta:passt
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi
id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$user"
home=$(getent passwd "$user" | cut -d: -f6)

cargo build --locked -p slipway
cargo nextest archive --locked -p slipway-sandbox --archive-file target/sandbox-tests.tar.zst

# What the user runs, in its own directory: the sources the tests may read (tracked and new
# files as they are in this checkout), the archive, nextest, and the binary.
work=$home/slipway-ci
rm -rf -- "$work"
mkdir -p "$work/src" "$work/bin"
git ls-files -z --cached --others --exclude-standard | tar --null -T - -c | tar -x -C "$work/src"
cp target/sandbox-tests.tar.zst "$work/"
cp target/debug/slipway "$(command -v cargo-nextest)" "$work/bin/"
chown -R "$user:" "$work"

# Its PATH is the system's: cells see the directories on Slipway's PATH, and this one is in a
# home directory. Its own tools are called by their paths.
as_user() {
  runuser -u "$user" -- env -i HOME="$home" USER="$user" LANG=C.UTF-8 \
    PATH=/usr/local/bin:/usr/bin:/bin CI=true "$@"
}

# Tests that need root to mean anything, named by their authors (they fail loudly otherwise).
root_only='test(=the_cell_reaches_no_address_of_the_host)'
echo "--- the sandbox's tests as $user"
as_user bash -c "cd '$work' && timeout 1200 '$work/bin/cargo-nextest' nextest run \
  --archive-file sandbox-tests.tar.zst --workspace-remap src --profile ci \
  -E 'not ($root_only)'"

echo "--- the README quick start as $user"
# A demo left by an earlier run as root would stop the user's: the README's directory is the
# check's to make. Only a fresh machine (CI) or the dedicated user's own is removed.
demo=/var/tmp/slipway-demo
if [ -e "$demo" ] && [ "$(stat -c %U "$demo")" != "$user" ]; then
  if [ "${CI:-}" = true ]; then
    rm -rf -- "$demo"
  else
    echo "unprivileged-check: $demo exists and is not $user's; remove it first" >&2
    exit 1
  fi
fi
as_user bash -c "cd '$work/src' && QUICKSTART_CLEAN=1 SLIPWAY_BIN='$work/bin/slipway' \
  timeout 600 ./scripts/quickstart-check.sh"

echo "--- slipway validate as $user (the demo's repository, its fix merged)"
as_user bash -c "cd '$home' && timeout 300 '$work/bin/slipway' validate '$demo/repo.git'"
