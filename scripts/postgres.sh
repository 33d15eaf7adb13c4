#!/usr/bin/env bash
# Starts a throwaway PostgreSQL (15 or later) for the tests: initdb in a temporary directory,
# its own port on 127.0.0.1, as the `postgres` user when root. Prints the lines to eval:
#   eval "$(./scripts/postgres.sh start)"   sets SLIPWAY_TEST_POSTGRES_URL (a server the tests
#                                            create a database each on), _DATA and _STOP
#   eval "$SLIPWAY_TEST_POSTGRES_STOP"      stops it and removes its directory
# `./scripts/postgres.sh durable` keeps fsync and synchronous commits on (for benchmarks).
# Fails (exit 1) with the reason when PostgreSQL is not installed.
set -euo pipefail
settings="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
[ "${1:-}" = durable ] && settings=""

bin=
for dir in /usr/lib/postgresql/*/bin; do
  [ -x "$dir/initdb" ] && bin=$dir
done
if [ -z "$bin" ] && command -v initdb >/dev/null 2>&1; then
  bin=$(dirname "$(command -v initdb)")
fi
if [ -z "$bin" ]; then
  echo "PostgreSQL is not installed (no initdb); Debian/Ubuntu: apt-get install postgresql" >&2
  exit 1
fi

root=$(mktemp -d /tmp/slipway-pg.XXXXXX)
chmod 0755 "$root"
as=()
if [ "$(id -u)" = 0 ]; then
  chown postgres "$root"
  as=(runuser -u postgres --)
fi
# A free port: ask the kernel for one.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${as[@]}" "$bin/initdb" -D "$root/data" -U postgres -A trust --no-sync >"$root/initdb.log" 2>&1 \
  || { cat "$root/initdb.log" >&2; exit 1; }
# Throwaway: no fsync (unless durable); enough connections for parallel tests (each store
# opens a pool).
"${as[@]}" "$bin/pg_ctl" -D "$root/data" -l "$root/server.log" -w -t 30 \
  -o "-p $port -k $root -c listen_addresses=127.0.0.1 $settings -c max_connections=500" \
  start >/dev/null || { cat "$root/server.log" >&2; exit 1; }
echo "export SLIPWAY_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:$port/postgres"
echo "export SLIPWAY_TEST_POSTGRES_DATA=$root/data"
echo "export SLIPWAY_TEST_POSTGRES_STOP='${as[*]} $bin/pg_ctl -D $root/data -m immediate stop >/dev/null; rm -rf $root'"
