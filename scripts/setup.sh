#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# setup.sh [run|test] — installs what jrpc needs on Debian bookworm (run as root), and nothing when
# it is all there already; one line per step says what it does.
#   run:  what building and running the daemon needs (`make run`, `make install`): compiler,
#         cmake, the libraries of libjrpc, jrpcd, the CLI and the example modules.
#   test: that, and the test, benchmark and fuzzing tools (`make test`, `make bench`,
#         `make fuzz`): cmocka, clang, Node test tools (npm ci), nginx, wrk, HAProxy, promtool,
#         scdoc for the man pages.
set -euo pipefail
mode=${1:-test}
case "$mode" in
  run | test) ;;
  *) echo "usage: setup.sh [run|test]" >&2; exit 2 ;;
esac

# Installs the Debian packages of $2... that are missing; $1 says what they are for.
apt_install() {
  local why=$1 p missing=()
  shift
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "setup: $why: installed"
    return
  fi
  echo "setup: apt-get install ${missing[*]} ($why)"
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages and not root; run: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The daemon: CMake finds these (CMakeLists.txt); curl is for trying the endpoint by hand.
apt_install "daemon build dependencies" build-essential cmake pkg-config \
  libuv1-dev libhttp-parser-dev libssl-dev libinih-dev libsqlite3-dev libcurl4-openssl-dev \
  libhiredis-dev zlib1g-dev curl
[ "$mode" = run ] && exit 0

# openssl: the command that makes the test certificates (cli-tls.test.mjs).
test_pkgs=(clang libclang-rt-14-dev clang-format libcmocka-dev libyajl-dev
           wrk nginx-light haproxy openssl prometheus redis-server scdoc procps)
# nodejs/npm may come from elsewhere than Debian; the commands are what count.
command -v node >/dev/null 2>&1 || test_pkgs+=(nodejs)
command -v npm >/dev/null 2>&1 || test_pkgs+=(npm)
apt_install "test, benchmark and fuzzing tools" "${test_pkgs[@]}"

# Pinned Node test tools (package-lock.json), installed once per lock file change.
if [ -f package-lock.json ]; then
  stamp=node_modules/.jrpc-lock-stamp
  if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
    echo "setup: npm ci (Node test tools, package-lock.json)"
    npm ci --no-audit --no-fund --loglevel=error
    cp package-lock.json "$stamp"
  else
    echo "setup: Node test tools: installed"
  fi
fi
