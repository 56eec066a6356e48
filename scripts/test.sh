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
  [ssh]=openssh-client
  [ssh-keygen]=openssh-client
  [sshd]=openssh-server # the SSH remote tests' server (internal/testenv.SSHD)
  [prometheus-pushgateway]=prometheus-pushgateway # the metrics tests' gateway
  [chromium]=chromium # the status page test's headless browser (internal/testenv.Chromium)
)
# have CMD: CMD is installed. sshd lives in /usr/sbin, which a normal
# user's PATH usually lacks.
have() {
  command -v "$1" >/dev/null 2>&1 && return 0
  case "$1" in
  sshd) [ -x /usr/sbin/sshd ] ;;
  chromium) [ -x /usr/bin/chromium ] ;;
  *) return 1 ;;
  esac
}
declare -A missing=()
for cmd in "${!needs[@]}"; do
  have "$cmd" || missing["${needs[$cmd]}"]=1
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "installing ${!missing[*]}" >&2
  # The tests start their own sshd and Pushgateway on loopback and free
  # ports; installing the packages must not start the system services (sshd
  # on port 22, a persisting gateway on 9091). Unless the machine already
  # has a policy (containers usually do), forbid service starts during the
  # install with a temporary policy-rc.d (exit 101: action forbidden).
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    trap '$sudo rm -f "$policy"' EXIT
    printf '#!/bin/sh\n# temporary, from poolboy scripts/test.sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
  fi
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${!missing[@]}" libc6-dev
  if [ "$(trap -p EXIT)" != "" ]; then
    $sudo rm -f "$policy"
    trap - EXIT
  fi
fi

go test -race -count=1 "$@" ./...
