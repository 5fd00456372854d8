#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench/soak.sh [BUILD_DIR] [conns|soak|idle|attack|all] — load and soak tests of jrpcd on loopback
# (issue 6) and its behaviour under attack (issue 11). Not part of `make test`;
# tests/integration/load.test.mjs is the short smoke version of the load.
#
#   conns  10 000 concurrent keep-alive connections (CONNS), each sending a request about every
#          second (INTERVAL_MS) — singles, batches, notifications, errors, worker and async calls —
#          held for DURATION seconds (default 60).
#   soak   SOAK_CONNS (64) connections in a closed loop with the same mix for SOAK_SECONDS
#          (default 300 = 5 minutes).
#   idle   CONNS keep-alive connections that each sent one request, then sit idle: jrpcd's RSS
#          growth per connection (target <= 1.5 KB).
#   attack one jrpcd with modest bounds and a slow upstream (bench/slow_upstream.mjs): normal
#          clients (ATTACK_CONNS connections, one request every ATTACK_INTERVAL_MS each) run
#          ATTACK_SECONDS alone (the baseline), then the same again while bench/attack.mjs runs
#          every attacker class of issue 11 at once (non-reading pipeliners, notification floods
#          over HTTP and WebSocket, WebSocket and HTTP body trickles, subscription storms,
#          gateway clients that leave). Prints the bounds set (each only when this jrpcd knows
#          the key: the same script gives "before" and "after" figures), the normal clients'
#          answers and errors in both runs (goal: 0 errors), p50/p99 under attack against the
#          baseline, jrpcd's peak RSS against max_memory, each attacker's tally, and how long
#          jrpcd took to exit after SIGTERM. About 90 s with the defaults.
#   all    all four, one after the other, each against a fresh jrpcd (the default).
#
# Each load prints: errors (target 0), jrpcd RSS at start / peak / end (sampled from
# /proc/PID/status; target: end within 10 % of the value with connections open), open fds before /
# after (ls /proc/PID/fd; target: equal), and p50 / p99 latency. Exit status 1 if any run counted
# an error or did not get its fds back. Everything stops by itself: the clients have a fixed
# duration, and every process started here is stopped by its PID when the script ends (jrpcd with
# SIGTERM, SIGKILL after 15 s).
set -euo pipefail
BUILD=${1:-build-bench}
MODE=${2:-all}
CONNS=${CONNS:-10000}
DURATION=${DURATION:-60}
INTERVAL_MS=${INTERVAL_MS:-1000}
SOAK_SECONDS=${SOAK_SECONDS:-300}
SOAK_CONNS=${SOAK_CONNS:-64}
# The attack phase (see attack.mjs for the attackers' own options, passed in ATTACK_ARGS).
ATTACK_SECONDS=${ATTACK_SECONDS:-30}          # each normal-client run: baseline, then under attack
ATTACK_CONNS=${ATTACK_CONNS:-50}
ATTACK_INTERVAL_MS=${ATTACK_INTERVAL_MS:-50}  # 50 connections x 20/s: about 1000 requests/s
ATTACK_ONLY=${ATTACK_ONLY:-pipe,flood,wsflood,wstrickle,trickle,subs,gateway}
ATTACK_ARGS=${ATTACK_ARGS:-}
UPSTREAM_DELAY_MS=${UPSTREAM_DELAY_MS:-2000}  # the slow upstream's answer time
STOP_WAIT=${STOP_WAIT:-15}                    # seconds jrpcd gets to exit after SIGTERM
# Bounds of issue 11, set when the build knows them. max_memory well under what the attackers
# would pin unbounded (GBs), well over what the normal clients need (a few MiB).
MAX_MEMORY=${MAX_MEMORY:-256MiB}
MAX_INFLIGHT=${MAX_INFLIGHT:-65536}
MAX_UNSENT=${MAX_UNSENT:-4MiB}
WS_MAX_SUBSCRIPTIONS=${WS_MAX_SUBSCRIPTIONS:-1000}
MAX_QUEUE=${MAX_QUEUE:-10000}
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
others=() # helper processes (upstream, attackers, clients) to stop at the end
stop_jrpcd() { # prints how long jrpcd took to exit when asked (STOP_VERBOSE=1)
  [ -n "$jpid" ] || return 0
  local t0 waited=0
  t0=$(date +%s.%N)
  kill -TERM "$jpid" 2>/dev/null || true
  for _ in $(seq 1 $((STOP_WAIT * 10))); do kill -0 "$jpid" 2>/dev/null || { waited=1; break; }; sleep 0.1; done
  if [ "${STOP_VERBOSE:-0}" = 1 ]; then
    if [ "$waited" = 1 ]; then
      echo "jrpcd exited $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}') s after SIGTERM"
    else
      echo "jrpcd still running ${STOP_WAIT} s after SIGTERM: SIGKILL"
    fi
  fi
  kill -KILL "$jpid" 2>/dev/null || true
  wait "$jpid" 2>/dev/null || true
  jpid=
}
stop_others() {
  local p
  for p in "${others[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${others[@]}"; do wait "$p" 2>/dev/null || true; done
  others=()
}
cleanup() { stop_others; stop_jrpcd; rm -rf "$tmp"; }
trap cleanup EXIT

start_jrpcd() { # extra jrpcd flags
  # --log-level warn: one info line per request would be most of the work (and of the disk).
  "$BUILD/jrpcd" --listen 127.0.0.1:0 --log-level warn --drain 5s \
    --module "$BUILD/modules/tennis.so" --module "$BUILD/modules/testkit.so" "$@" \
    > "$tmp/jrpcd.out" 2> "$tmp/jrpcd.err" &
  jpid=$!
  for _ in $(seq 1 100); do grep -q 'listening on' "$tmp/jrpcd.out" 2>/dev/null && break; sleep 0.05; done
  port=$(sed -n 's/.*listening on .*:\([0-9]*\)$/\1/p' "$tmp/jrpcd.out" | head -1)
  [ -n "$port" ] || { echo "soak: jrpcd did not start:" >&2; cat "$tmp/jrpcd.err" >&2; exit 1; }
}

# ---- attack (issue 11) -----------------------------------------------------------------------------

wait_line() { # file pattern seconds → 0 once the pattern is in the file
  for _ in $(seq 1 $(($3 * 20))); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  return 1
}

# 0 when this jrpcd accepts `key = value` in the section (an unknown key fails --check).
knows() { # section key value
  { echo "[$1]"
    [ "$1" = server ] || printf 'urls = http://127.0.0.1:9/\nmethods = probe.*\n'
    echo "$2 = $3"; } > "$tmp/probe.ini"
  "$BUILD/jrpcd" --check --config "$tmp/probe.ini" > /dev/null 2>&1
}

join() { # items → "a, b, c", or "none"
  local out='' x
  for x in "$@"; do out+="${out:+, }$x"; done
  echo "${out:-none}"
}

size_bytes() { # 256MiB → 268435456
  awk -v s="$1" 'BEGIN { n = s + 0; u = s; sub(/^[0-9.]+/, "", u)
    m[""] = 1; m["KB"] = 1e3; m["MB"] = 1e6; m["GB"] = 1e9
    m["KiB"] = 1024; m["MiB"] = 1048576; m["GiB"] = 1073741824; printf "%.0f", n * m[u] }'
}

attack_phase() {
  node "$here/slow_upstream.mjs" --delay "$UPSTREAM_DELAY_MS" > "$tmp/upstream.out" 2>&1 &
  local uppid=$!
  others+=("$uppid")
  wait_line "$tmp/upstream.out" 'listening on' 10 || { echo "soak: slow upstream did not start" >&2; exit 1; }
  local upport
  upport=$(sed -n 's/^slow-upstream listening on \([0-9]*\)$/\1/p' "$tmp/upstream.out")

  # The bounds: each set only when this build knows it, so today's build gives "before" figures.
  local set=() unset=() server_keys=() up_keys=() kv key val maxmem=
  for kv in "max_inflight=$MAX_INFLIGHT" "max_memory=$MAX_MEMORY" "max_unsent=$MAX_UNSENT" \
            "ws_max_subscriptions=$WS_MAX_SUBSCRIPTIONS"; do
    key=${kv%%=*}; val=${kv#*=}
    if knows server "$key" "$val"; then
      server_keys+=("$key = $val"); set+=("$key = $val")
      [ "$key" = max_memory ] && maxmem=$(size_bytes "$val")
    else
      unset+=("$key")
    fi
  done
  if knows "upstream probe" max_queue "$MAX_QUEUE"; then
    up_keys+=("max_queue = $MAX_QUEUE"); set+=("[upstream] max_queue = $MAX_QUEUE")
  else
    unset+=("[upstream] max_queue")
  fi
  { echo "[server]"
    printf '%s\n' "${server_keys[@]}"
    echo "[upstream slow]"
    echo "urls = http://127.0.0.1:$upport/"
    echo "methods = slow.*"
    printf '%s\n' "${up_keys[@]}"; } > "$tmp/attack.ini"
  local bounds
  bounds="set: $(join "${set[@]}"); not known to this build: $(join "${unset[@]}")"

  start_jrpcd --config "$tmp/attack.ini"
  echo "== attack: jrpcd pid $jpid on 127.0.0.1:$port ($BUILD, $(nproc) cores), slow upstream" \
       "(${UPSTREAM_DELAY_MS} ms) on $upport"
  echo "bounds $bounds"
  local normal=(--port "$port" --pid "$jpid" --conns "$ATTACK_CONNS" --duration "$ATTACK_SECONDS"
                --interval "$ATTACK_INTERVAL_MS" --settle 0 --json)

  echo "baseline: $ATTACK_CONNS normal connections for ${ATTACK_SECONDS} s, no attacker"
  node "$here/conns.mjs" "${normal[@]}" --label baseline > "$tmp/base.json" || status=1

  echo "attack: attackers ($ATTACK_ONLY) and the same normal clients for ${ATTACK_SECONDS} s"
  # shellcheck disable=SC2086  # ATTACK_ARGS is a list of options
  node "$here/attack.mjs" --port "$port" --pid "$jpid" --upstream-port "$upport" \
    --max-memory "$maxmem" --settings "$bounds" --only "$ATTACK_ONLY" \
    --baseline "$tmp/base.json" --normal "$tmp/under.json" $ATTACK_ARGS > "$tmp/attack.out" &
  local apid=$!
  others+=("$apid")
  if ! wait_line "$tmp/attack.out" '^attack: running' 60; then
    echo "soak: the attackers did not start" >&2; cat "$tmp/attack.out" >&2; exit 1
  fi
  node "$here/conns.mjs" "${normal[@]}" --label "under attack" > "$tmp/under.json" || status=1
  kill -TERM "$apid" 2>/dev/null || true
  wait "$apid" || true
  grep -v '^attack: running' "$tmp/attack.out" || true
  if [ -s "$tmp/jrpcd.err" ]; then
    echo "jrpcd stderr: $(wc -l < "$tmp/jrpcd.err") lines; the first:"; head -10 "$tmp/jrpcd.err"
  fi
  STOP_VERBOSE=1 stop_jrpcd
  kill -TERM "$uppid" 2>/dev/null || true
  wait "$uppid" 2>/dev/null || true
  node -e '
    const s = JSON.parse(process.argv[1]);
    console.log(`slow upstream in all: ${s.requests} requests, ${s.calls} calls; after the attack ended: ` +
      `${s.calls_after_mark} calls in ${s.requests_after_mark} requests (work for clients long gone), ` +
      `${s.aborted} requests abandoned by jrpcd`);' "$(tail -1 "$tmp/upstream.out")" || true
  others=()
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
  attack|all) attack_phase ;;
esac
case $MODE in
  conns|soak|idle|attack|all) ;;
  *) echo "soak: unknown mode $MODE (conns, soak, idle, attack or all)" >&2; exit 2 ;;
esac
exit $status
