#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine with only Go and git: installs the
# Debian packages the tests use when they are missing, then runs every test with the
# race detector. Extra arguments go to `go test` (e.g. -run TestClean -v).
set -euo pipefail
cd "$(dirname "$0")/.."

# command -> Debian package that provides it
declare -A needs=(
  [git]=git
  [gcc]=gcc # the race detector needs cgo
)
missing=()
for cmd in "${!needs[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${needs[$cmd]}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "installing ${missing[*]}" >&2
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" libc6-dev
fi

go test -race -count=1 "$@" ./...
