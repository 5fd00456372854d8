#!/usr/bin/env bash
# setup.sh — installs what building and testing jrpc needs on Debian bookworm (run as root), and
# nothing when it is all there already. Called by `make run`, `make test`, `make bench`.
set -euo pipefail

pkgs=(build-essential cmake pkg-config clang libclang-rt-14-dev clang-format
      libuv1-dev libhttp-parser-dev libssl-dev zlib1g-dev libinih-dev
      libsqlite3-dev libcurl4-openssl-dev libyajl-dev libcmocka-dev
      wrk nginx-light curl procps)
# Test only: promtool (in Debian's prometheus) checks the /metrics exposition.
pkgs+=(prometheus)
command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
command -v npm >/dev/null 2>&1 || pkgs+=(npm)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# nodejs/npm may come from elsewhere than Debian; the commands are what count.
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages and not root; run: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Pinned Node test tools (package-lock.json), installed once per lock file change.
if [ -f package-lock.json ]; then
  stamp=node_modules/.jrpc-lock-stamp
  if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
    npm ci --no-audit --no-fund --loglevel=error
    cp package-lock.json "$stamp"
  fi
fi
