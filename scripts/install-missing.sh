#!/usr/bin/env bash
# Installs the Debian packages whose commands are missing: each argument is COMMAND:PACKAGE
# (COMMAND|OTHER:PACKAGE when either command will do). Only as root where apt-get exists;
# otherwise it names what to install and fails.
set -euo pipefail

need=()
for pair in "$@"; do
  commands=${pair%%:*} package=${pair#*:} found=
  for command in ${commands//|/ }; do
    command -v "$command" >/dev/null 2>&1 && found=1 && break
  done
  [ -n "$found" ] || need+=("$package")
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
else
  echo "missing: ${need[*]}; install them (Debian/Ubuntu: sudo apt-get install ${need[*]}) and run again" >&2
  exit 1
fi
