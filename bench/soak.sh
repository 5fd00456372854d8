#!/usr/bin/env bash
# bench/soak.sh [BUILD_DIR] [conns|soak|idle|all] — load and soak tests of jrpcd on loopback (issue 6).
# Not part of `make test`; tests/integration/load.test.mjs is the short smoke version.
#
#   conns  10 000 concurrent keep-alive connections (CONNS), each sending a request about every
#          second (INTERVAL_MS) — singles, batches, notifications, errors, worker and async calls —
#          held for DURATION seconds (default 60).
#   soak   SOAK_CONNS (64) connections in a closed loop with the same mix for SOAK_SECONDS
#          (default 300 = 5 minutes).
#   idle   CONNS keep-alive connections that each sent one request, then sit idle: jrpcd's RSS
#          growth per connection (target <= 1.5 KB).
#   all    all three, one after the other, each against a fresh jrpcd (the default).
#
# Each prints: errors (target 0), jrpcd RSS at start / peak / end (sampled from /proc/PID/status;
# target: end within 10 % of the value with connections open), open fds before / after
# (ls /proc/PID/fd; target: equal), and p50 / p99 latency. Exit status 1 if any run counted an
# error or did not get its fds back. Everything stops by itself: the client has a fixed
# duration, jrpcd is stopped with SIGTERM (SIGKILL after 15 s) when the script ends.
set -euo pipefail
BUILD=${1:-build-bench}
MODE=${2:-all}
CONNS=${CONNS:-10000}
DURATION=${DURATION:-60}
INTERVAL_MS=${INTERVAL_MS:-1000}
SOAK_SECONDS=${SOAK_SECONDS:-300}
SOAK_CONNS=${SOAK_CONNS:-64}
here=$(cd "$(dirname "$0")" && pwd)
[ -x "$BUILD/jrpcd" ] || { echo "soak: $BUILD/jrpcd not found (build it first)" >&2; exit 2; }

# Each side holds one fd per connection, plus some.
need=$((CONNS + 256))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
  echo "soak: the hard fd limit is $hard, $need needed for $CONNS connections (raise it or lower CONNS)" >&2
  exit 2
fi
ulimit -n "$hard"

tmp=$(mktemp -d)
jpid=
stop_jrpcd() {
  [ -n "$jpid" ] || return 0
  kill -TERM "$jpid" 2>/dev/null || true
  for _ in $(seq 1 150); do kill -0 "$jpid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$jpid" 2>/dev/null || true
  wait "$jpid" 2>/dev/null || true
  jpid=
}
cleanup() { stop_jrpcd; rm -rf "$tmp"; }
trap cleanup EXIT

start_jrpcd() {
  # --log-level warn: one info line per request would be most of the work (and of the disk).
  "$BUILD/jrpcd" --listen 127.0.0.1:0 --log-level warn --drain 5s \
    --module "$BUILD/modules/tennis.so" --module "$BUILD/modules/testkit.so" \
    > "$tmp/jrpcd.out" 2> "$tmp/jrpcd.err" &
  jpid=$!
  for _ in $(seq 1 100); do grep -q 'listening on' "$tmp/jrpcd.out" 2>/dev/null && break; sleep 0.05; done
  port=$(sed -n 's/.*listening on .*:\([0-9]*\)$/\1/p' "$tmp/jrpcd.out" | head -1)
  [ -n "$port" ] || { echo "soak: jrpcd did not start:" >&2; cat "$tmp/jrpcd.err" >&2; exit 1; }
}

status=0
run() { # label, then conns.mjs arguments
  local label=$1; shift
  start_jrpcd
  echo "== $label: jrpcd pid $jpid on 127.0.0.1:$port ($BUILD, $(nproc) cores, fd limit $(ulimit -n))"
  node "$here/conns.mjs" --port "$port" --pid "$jpid" --label "$label" "$@" || status=1
  if [ -s "$tmp/jrpcd.err" ]; then
    echo "[$label] jrpcd stderr (warnings and errors):"; head -20 "$tmp/jrpcd.err"
  fi
  stop_jrpcd
}

case $MODE in
  conns|all) run "10k" --conns "$CONNS" --duration "$DURATION" --interval "$INTERVAL_MS" ;;
esac
case $MODE in
  soak|all) run "soak" --conns "$SOAK_CONNS" --duration "$SOAK_SECONDS" --interval 0 ;;
esac
case $MODE in
  idle|all)
    start_jrpcd
    echo "== idle: jrpcd pid $jpid on 127.0.0.1:$port ($BUILD)"
    node "$here/idle.mjs" --port "$port" --pid "$jpid" --conns "$CONNS" || status=1
    stop_jrpcd ;;
esac
case $MODE in
  conns|soak|idle|all) ;;
  *) echo "soak: unknown mode $MODE (conns, soak, idle or all)" >&2; exit 2 ;;
esac
exit $status
