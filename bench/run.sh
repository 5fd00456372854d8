#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench/run.sh BUILD_DIR — jrpcd against nginx in the same run, on loopback, with wrk.
# nginx answers every POST with a fixed 40-byte JSON body (it ignores the request body); jrpcd
# parses and answers the calls. Both get one worker (io_threads 1 / worker_processes 1) so the
# comparison is per core, and wrk (-t1 -c32) has the other core. Each case alternates the two
# servers ROUNDS times and prints the median requests/s of each and the ratio.
set -euo pipefail
BUILD=${1:-build-bench}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
CONNS=${CONNS:-32}
ONLY=${ONLY:-http metrics keys gateway gwcache ws cli redis stream} # sections to run, e.g. ONLY=ws
want() { case " $ONLY " in *" $1 "*) return 0 ;; esac; return 1; }
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  # Servers started inside $(...) cannot add to pids: they leave their PID in a *.pid file.
  for f in "$tmp"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
  node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}

# ---- nginx: fixed answer -----------------------------------------------------------------------
nport=$(free_port)
mkdir -p "$tmp/nginx"
cat > "$tmp/nginx/nginx.conf" <<NGX
worker_processes 1;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$nport;
    location / {
      default_type application/json;
      return 200 '{"jsonrpc":"2.0","result":"pong","id":1}';
    }
  }
}
NGX
nginx -c "$tmp/nginx/nginx.conf" -p "$tmp/nginx" &
pids+=($!)

# ---- jrpcd -------------------------------------------------------------------------------------
"$BUILD/jrpcd" --listen 127.0.0.1:0 --io-threads 1 --quiet \
  --module "$BUILD/modules/tennis.so" --module "$BUILD/modules/testkit.so" > "$tmp/jrpcd.out" &
jpid=$!
pids+=($jpid)
for _ in $(seq 1 100); do grep -q 'listening on' "$tmp/jrpcd.out" 2>/dev/null && break; sleep 0.05; done
jport=$(sed -n 's/.*listening on .*:\([0-9]*\)$/\1/p' "$tmp/jrpcd.out" | head -1)
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$nport/" && break; sleep 0.05; done
rss_idle=$(awk '/VmRSS/ {print $2}' "/proc/$jpid/status")

# ---- bodies ------------------------------------------------------------------------------------
printf '%s' '{"jsonrpc":"2.0","method":"tennis@ping","id":1}' > "$tmp/single.json"
batch() {
  node -e "
    const n = +process.argv[1], a = [];
    for (let i = 0; i < n; i++)
      a.push({jsonrpc: '2.0', method: 'test.echo', id: i,
              params: ['0x2f0ea53f92252167d658963f334a91de0824e322', i, {block: 'latest'}]});
    process.stdout.write(JSON.stringify(a));" "$1"
}
batch 100 > "$tmp/batch100.json"
batch 1000 > "$tmp/batch1000.json"

for f in single batch100 batch1000; do
  cat > "$tmp/$f.lua" <<LUA
local f = io.open("$tmp/$f.json", "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
LUA
done

# Sanity: jrpcd really answers the bodies (a broken server must not look fast).
for f in single batch100 batch1000; do
  out=$(curl -s --data-binary "@$tmp/$f.json" "http://127.0.0.1:$jport/api/v1/endpoint")
  case "$f" in
    single) echo "$out" | grep -q '"result":"pong"' || { echo "bench: bad answer: $out" >&2; exit 1; } ;;
    *) n=$(echo "$out" | grep -o '"result"' | wc -l)
       [ "$n" = "${f#batch}" ] || { echo "bench: $f answered $n results" >&2; exit 1; } ;;
  esac
done

rps() { # url lua → requests/s
  wrk -t1 -c"$CONNS" -d"$DURATION" -s "$2" "$1" | awk '/Requests\/sec/ {print $2}'
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ticks() { # pids → their CPU time so far in clock ticks: "user kernel" (utime, stime)
  local u=0 k=0 p a b
  for p in "$@"; do
    read -r a b < <(awk '{print $14, $15}' "/proc/$p/stat")
    u=$((u + a)); k=$((k + b))
  done
  echo "$u $k"
}
machine() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6}' /proc/stat; } # busy idle
# One wrk run at url, with the CPU each party spent per request (µs): the server's (pids, user
# and kernel), wrk's own (bash's `time`) and, when given, the node's behind it, and how busy the
# whole machine was. → "req/s cpu-us busy-% user-us kernel-us wrk-us node-us"
gw_rps() { # url lua "server pids" ["node pids"]
  local t0 t1 n0 n1 m0 m1 out
  # shellcheck disable=SC2086 # pid lists split on purpose
  { t0=$(ticks $3); n0=$(ticks ${4:-}); m0=$(machine); }
  out=$( { TIMEFORMAT='wrk-cpu %U %S'; time wrk -t1 -c"$CONNS" -d"$DURATION" -s "$2" "$1"; } 2>&1)
  # shellcheck disable=SC2086
  { t1=$(ticks $3); n1=$(ticks ${4:-}); m1=$(machine); }
  echo "$out" | awk -v t0="$t0" -v t1="$t1" -v n0="$n0" -v n1="$n1" -v m0="$m0" -v m1="$m1" \
    -v hz="$(getconf CLK_TCK)" '
    / requests in / { n = $1 }
    /Requests\/sec/ { r = $2 }
    $1 == "wrk-cpu" { w = $2 + $3 }
    END { split(m0, a, " "); split(m1, b, " "); split(t0, c, " "); split(t1, d, " ");
          split(n0, e, " "); split(n1, g, " ");
          busy = b[1] - a[1]; idle = b[2] - a[2]; u = d[1] - c[1]; k = d[2] - c[2];
          f = n ? 1e6 / hz / n : 0;
          printf "%s %.2f %.0f %.2f %.2f %.1f %.1f\n", r, (u + k) * f, 100 * busy / (busy + idle),
                 u * f, k * f, n ? w * 1e6 / n : 0, (g[1] + g[2] - e[1] - e[2]) * f }'
}
cpu_rps() { gw_rps "$@" | awk '{print $1, $2}'; } # url lua pid → "req/s cpu-us-per-request"
col() { awk -v c="$1" '{print $c}'; }
gw_wait() { # file → port printed by "… listening on [HOST:]PORT"
  for _ in $(seq 1 200); do grep -q 'listening on' "$1" 2>/dev/null && break; sleep 0.05; done
  sed -n 's/.*listening on \(.*:\)\{0,1\}\([0-9][0-9]*\)$/\2/p' "$1" | head -1
}

if want http; then
echo "jrpc bench: wrk -t1 -c$CONNS -d$DURATION, $ROUNDS alternating rounds, medians; $(nproc) cores"
printf '%-26s %14s %14s %8s\n' case "jrpcd req/s" "nginx req/s" ratio
for f in single batch100 batch1000; do
  : > "$tmp/j.$f"; : > "$tmp/n.$f"
  for _ in $(seq 1 "$ROUNDS"); do
    rps "http://127.0.0.1:$nport/" "$tmp/$f.lua" >> "$tmp/n.$f"
    rps "http://127.0.0.1:$jport/api/v1/endpoint" "$tmp/$f.lua" >> "$tmp/j.$f"
  done
  j=$(median < "$tmp/j.$f"); n=$(median < "$tmp/n.$f")
  case $f in
    single) label="single tennis@ping"; target=1.0 ;;
    batch100) label="batch of 100 test.echo"; target=0.4 ;;
    batch1000) label="batch of 1000 test.echo"; target="-" ;;
  esac
  ratio=$(awk -v a="$j" -v b="$n" 'BEGIN {printf "%.2f", a / b}')
  printf '%-26s %14s %14s %8s  (target %s)\n' "$label" "$j" "$n" "$ratio" "$target"
done
rss_after=$(awk '/VmRSS/ {print $2}' "/proc/$jpid/status")
echo "jrpcd RSS idle: $((rss_idle / 1024)).$(((rss_idle % 1024) * 10 / 1024)) MB (target <= 8 MB); after load: $((rss_after / 1024)) MB"
if [ -x "$BUILD/bench/bench_scan" ]; then
  "$BUILD/bench/bench_scan"
fi
fi # http

# ---- Metrics (docs/metrics.md): the same jrpcd with an admin listener, scraped every second as
# Prometheus would, against the one above without; rounds alternate (and which goes first), and
# medians are compared. On a shared machine requests/s swings with the neighbours' load, so the
# CPU time jrpcd spends per request (its utime + stime over wrk's requests) is compared too: the
# target is at most 3 % more with metrics. Only a server with an admin listener times requests.
if want metrics; then
"$BUILD/jrpcd" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --io-threads 1 --quiet \
  --module "$BUILD/modules/tennis.so" --module "$BUILD/modules/testkit.so" > "$tmp/jrpcd-m.out" &
mpid=$!
pids+=($mpid)
for _ in $(seq 1 100); do grep -q 'admin listening on' "$tmp/jrpcd-m.out" 2>/dev/null && break; sleep 0.05; done
mport=$(sed -n 's/^jrpcd listening on .*:\([0-9]*\)$/\1/p' "$tmp/jrpcd-m.out" | head -1)
aport=$(sed -n 's/^jrpcd admin listening on .*:\([0-9]*\)$/\1/p' "$tmp/jrpcd-m.out" | head -1)
while curl -s -o /dev/null "http://127.0.0.1:$aport/metrics"; do sleep 1; done &
pids+=($!)
echo "metrics bench: wrk -t1 -c$CONNS -d$DURATION, $ROUNDS alternating rounds, medians; scraped every 1 s"
printf '%-12s %12s %12s %7s %14s %14s %7s\n' case "req/s admin" "req/s none" ratio \
  "cpu-us admin" "cpu-us none" ratio
for f in single batch100; do
  : > "$tmp/m.$f"; : > "$tmp/p.$f"
  for i in $(seq 1 "$ROUNDS"); do
    if [ $((i % 2)) = 1 ]; then
      cpu_rps "http://127.0.0.1:$jport/api/v1/endpoint" "$tmp/$f.lua" "$jpid" >> "$tmp/p.$f"
      cpu_rps "http://127.0.0.1:$mport/api/v1/endpoint" "$tmp/$f.lua" "$mpid" >> "$tmp/m.$f"
    else
      cpu_rps "http://127.0.0.1:$mport/api/v1/endpoint" "$tmp/$f.lua" "$mpid" >> "$tmp/m.$f"
      cpu_rps "http://127.0.0.1:$jport/api/v1/endpoint" "$tmp/$f.lua" "$jpid" >> "$tmp/p.$f"
    fi
  done
  mr=$(awk '{print $1}' "$tmp/m.$f" | median); pr=$(awk '{print $1}' "$tmp/p.$f" | median)
  mc=$(awk '{print $2}' "$tmp/m.$f" | median); pc=$(awk '{print $2}' "$tmp/p.$f" | median)
  printf '%-12s %12s %12s %7s %14s %14s %7s  (target cpu ratio <= 1.03)\n' "$f" "$mr" "$pr" \
    "$(awk -v a="$mr" -v b="$pr" 'BEGIN {printf "%.3f", a / b}')" "$mc" "$pc" \
    "$(awk -v a="$mc" -v b="$pc" 'BEGIN {printf "%.3f", a / b}')"
done
curl -s "http://127.0.0.1:$aport/metrics" | grep -q '^jrpc_calls_total{transport="http",method="test.echo",code="ok"} [1-9]' ||
  { echo "bench: the metrics jrpcd did not count its calls" >&2; exit 1; }
fi # metrics

# ---- API keys (docs/keys.md): the same jrpcd with a key required and a local budget whose rate
# never refuses (10^9 units/s), against the one above without keys; rounds alternate (and which
# goes first), medians compared, requests/s and jrpcd's CPU time per request as in the metrics
# section. Target: at most 5 % below keys off. Two ways of sending the key:
# - in the path (POST /v2/<key>, seed 002) against keys off at /api/v1/endpoint: this also counts
#   the 17 more bytes of request line the HTTP parser reads;
# - in an X-API-Key header sent to both servers (keys off ignores it): the same bytes on the wire,
#   so the difference is what checking the key and its budget costs.
# Then, since this machine's throughput moves by ±10 % from one second to the next, the userland
# instructions per request of each case under callgrind (valgrind), which noise does not move.
if want keys; then
ksecret=bench-secret-0123456789abcdef
cat > "$tmp/keys.ini" <<INI
[auth]
required = on
path_prefix = /v2
[key bench]
secret = $ksecret
rate = 1000000000/s
[cost]
test.echo = 2
INI
"$BUILD/jrpcd" --config "$tmp/keys.ini" --listen 127.0.0.1:0 --io-threads 1 --quiet \
  --module "$BUILD/modules/tennis.so" --module "$BUILD/modules/testkit.so" > "$tmp/jrpcd-k.out" &
kpid=$!
pids+=($kpid)
kport=$(gw_wait "$tmp/jrpcd-k.out")
kurl="http://127.0.0.1:$kport/v2/$ksecret"
# Keys off, answering at the keyed URL's path: the same bytes on the wire as the path-key case, so
# the comparison shows what checking keys costs apart from the longer request line.
"$BUILD/jrpcd" --path "/v2/$ksecret" --listen 127.0.0.1:0 --io-threads 1 --quiet \
  --module "$BUILD/modules/tennis.so" --module "$BUILD/modules/testkit.so" > "$tmp/jrpcd-ks.out" &
kspid=$!
pids+=($kspid)
ksport=$(gw_wait "$tmp/jrpcd-ks.out")
# Sanity: the key is required (401 without), and a keyed batch of 100 answers 100 results.
[ "$(curl -s -o /dev/null -w '%{http_code}' --data-binary "@$tmp/single.json" \
  "http://127.0.0.1:$kport/api/v1/endpoint")" = 401 ] || { echo "bench: keys not required" >&2; exit 1; }
n=$(curl -s --data-binary "@$tmp/batch100.json" "$kurl" | grep -o '"result"' | wc -l)
[ "$n" = 100 ] || { echo "bench: keyed batch100 answered $n results" >&2; exit 1; }
echo "keys bench: wrk -t1 -c$CONNS -d$DURATION, $ROUNDS alternating rounds, medians; key in the path, local budget"
printf '%-12s %12s %12s %7s %14s %14s %7s\n' case "req/s keys" "req/s off" ratio \
  "cpu-us keys" "cpu-us off" ratio
for f in single batch100; do
  sed "s|^wrk.headers\[\"Content-Type\"\] = \"application/json\"\$|&\nwrk.headers[\"X-API-Key\"] = \"$ksecret\"|" \
    "$tmp/$f.lua" > "$tmp/$f-hdr.lua"
  grep -q X-API-Key "$tmp/$f-hdr.lua" || { echo "bench: no key header in $f-hdr.lua" >&2; exit 1; }
done
# single, batch100: key in the path, keys off at /api/v1/endpoint; -same: keys off at the keyed
# path (the same bytes); -hdr: the key in X-API-Key, sent to both.
for f in single batch100 single-same batch100-same single-hdr batch100-hdr; do
  ou="http://127.0.0.1:$jport/api/v1/endpoint"; opid=$jpid
  case $f in
    *-hdr) lua="$tmp/$f.lua"; ku="http://127.0.0.1:$kport/api/v1/endpoint" ;;
    *-same) lua="$tmp/${f%-same}.lua"; ku=$kurl; ou="http://127.0.0.1:$ksport/v2/$ksecret"; opid=$kspid ;;
    *) lua="$tmp/$f.lua"; ku=$kurl ;;
  esac
  : > "$tmp/k.$f"; : > "$tmp/o.$f"
  for i in $(seq 1 "$ROUNDS"); do
    if [ $((i % 2)) = 1 ]; then
      cpu_rps "$ou" "$lua" "$opid" >> "$tmp/o.$f"
      cpu_rps "$ku" "$lua" "$kpid" >> "$tmp/k.$f"
    else
      cpu_rps "$ku" "$lua" "$kpid" >> "$tmp/k.$f"
      cpu_rps "$ou" "$lua" "$opid" >> "$tmp/o.$f"
    fi
  done
  kr=$(awk '{print $1}' "$tmp/k.$f" | median); orr=$(awk '{print $1}' "$tmp/o.$f" | median)
  kc=$(awk '{print $2}' "$tmp/k.$f" | median); oc=$(awk '{print $2}' "$tmp/o.$f" | median)
  printf '%-12s %12s %12s %7s %14s %14s %7s  (target req/s ratio >= 0.95)\n' "$f" "$kr" "$orr" \
    "$(awk -v a="$kr" -v b="$orr" 'BEGIN {printf "%.3f", a / b}')" "$kc" "$oc" \
    "$(awk -v a="$kc" -v b="$oc" 'BEGIN {printf "%.3f", a / b}')"
done
if command -v valgrind > /dev/null && command -v callgrind_control > /dev/null; then
  # Each jrpcd again under callgrind; counters zeroed before a 3 s wrk run and dumped after it.
  cg_start() { # tag args... → port; pid in $tmp/cg-TAG.pid
    local tag=$1; shift
    valgrind --tool=callgrind --callgrind-out-file="$tmp/cg-$tag.%p" "$BUILD/jrpcd" "$@" \
      --listen 127.0.0.1:0 --io-threads 1 --quiet --module "$BUILD/modules/tennis.so" \
      --module "$BUILD/modules/testkit.so" > "$tmp/cg-$tag.out" 2>&1 &
    echo $! > "$tmp/cg-$tag.pid" # in $(...): cleanup reads the file
    for _ in $(seq 1 400); do grep -q 'listening on' "$tmp/cg-$tag.out" 2>/dev/null && break; sleep 0.05; done
    sed -n 's/^jrpcd listening on .*:\([0-9]*\)$/\1/p' "$tmp/cg-$tag.out" | head -1
  }
  cg_ir() { # tag url lua → instructions per request
    local p n f
    p=$(cat "$tmp/cg-$1.pid")
    callgrind_control -z "$p" > /dev/null 2>&1
    n=$(wrk -t1 -c"$CONNS" -d3s -s "$3" "$2" | awk '/ requests in / {print $1}')
    callgrind_control -d "$p" > /dev/null 2>&1
    for _ in $(seq 1 100); do
      f=$(ls -t "$tmp/cg-$1".*.* 2>/dev/null | head -1)
      [ -n "$f" ] && grep -q '^totals:' "$f" && break
      sleep 0.05
    done
    awk -v n="$n" '/^totals:/ {printf "%.0f\n", $2 / n}' "$f"
    rm -f "$f"
  }
  cgk=$(cg_start keys --config "$tmp/keys.ini")
  cgo=$(cg_start off)
  cgs=$(cg_start same --path "/v2/$ksecret")
  echo "instructions per request (callgrind, userland of jrpcd; wrk -c$CONNS -d3s each)"
  printf '%-16s %12s %12s %7s\n' case "keys" "off" ratio
  for f in single batch100; do
    for how in path same hdr; do
      ou="http://127.0.0.1:$cgo/api/v1/endpoint"; otag=off
      case $how in
        path) lua="$tmp/$f.lua"; ku="http://127.0.0.1:$cgk/v2/$ksecret" ;;
        same) lua="$tmp/$f.lua"; ku="http://127.0.0.1:$cgk/v2/$ksecret"
              ou="http://127.0.0.1:$cgs/v2/$ksecret"; otag=same ;;
        hdr) lua="$tmp/$f-hdr.lua"; ku="http://127.0.0.1:$cgk/api/v1/endpoint" ;;
      esac
      a=$(cg_ir keys "$ku" "$lua"); b=$(cg_ir "$otag" "$ou" "$lua")
      printf '%-16s %12s %12s %7s\n' "$f-$how" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.3f", a / b}')"
    done
  done
fi
fi # keys

# ================================================================================================
# Gateway (docs/gateway.md): ganache directly vs through jrpcd, and a jrpcd→jrpcd chain.
# ganache answers on one Node thread; jrpcd forwards with one io thread. Through the gateway each
# request costs jrpcd's HTTP server and its libcurl client on top of the node's own work, so the
# ratio shows what the gateway takes away from a node. The chain (an upstream jrpcd serving
# test.echo, a gateway jrpcd in front) has no node cost, so its added latency is jrpcd's own
# overhead: p50 with one connection (wrk -c1), chain minus the upstream alone. nginx proxy_pass
# to the same ganache (keep-alive upstream, no JSON parsing at all) is printed as the yardstick of
# what any HTTP proxy costs on this machine.
# Each row also prints the CPU time the proxy spent per request (utime + stime from /proc, its
# worker for nginx) and how busy the whole machine was (from /proc/stat) in the direct runs: when
# the node and wrk already keep both cores busy, a proxy can only take its time from them, and
# the ratio shows that share rather than anything the proxy waits on. eth_getBalance is a call
# the node does real work for (a state lookup), eth_blockNumber one it answers from memory.
# ================================================================================================
gw_p50() { # url lua → p50 latency in µs, one connection
  wrk -t1 -c1 -d"$DURATION" --latency -s "$2" "$1" | awk '
    $1 == "50%" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
                  m = (u == "us") ? 1 : (u == "ms") ? 1000 : (u == "s") ? 1000000 : 1;
                  printf "%.1f\n", v * m }'
}


if want gateway; then
(cd "$here/.." && exec node -e "
  const s = require('ganache').server({ logging: { quiet: true }, wallet: { deterministic: true },
                                        chain: { chainId: 1337 } });
  s.listen(0, '127.0.0.1', (e) => { if (e) process.exit(1);
                                    console.log('ganache listening on ' + s.address().port); });
") > "$tmp/ganache.out" 2>&1 &
pids+=($!)
gport=$(gw_wait "$tmp/ganache.out")

pxport=$(free_port)
mkdir -p "$tmp/nginx-proxy"
cat > "$tmp/nginx-proxy/nginx.conf" <<NGX
worker_processes 1;
daemon off;
pid $tmp/nginx-proxy/nginx.pid;
error_log $tmp/nginx-proxy/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx-proxy;
  upstream ganache { server 127.0.0.1:$gport; keepalive 64; }
  server {
    listen 127.0.0.1:$pxport;
    keepalive_requests 1000000;
    location / {
      proxy_pass http://ganache;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
NGX
nginx -c "$tmp/nginx-proxy/nginx.conf" -p "$tmp/nginx-proxy" &
pids+=($!)
pxpid=$!

# Plain forwarding: answer sharing off (the gwcache section measures it).
cat > "$tmp/gw.ini" <<INI
[upstream eth]
urls = http://127.0.0.1:$gport/
methods = eth_* net_* web3_*
max_batch = 100
dedup = off
[cache]
size = 0
INI
"$BUILD/jrpcd" --listen 127.0.0.1:0 --io-threads 1 --quiet --config "$tmp/gw.ini" > "$tmp/gw.out" &
pids+=($!)
gwpid=$!
gwport=$(gw_wait "$tmp/gw.out")

# The chain: an upstream jrpcd with testkit, a gateway jrpcd forwarding test.* to it.
"$BUILD/jrpcd" --listen 127.0.0.1:0 --io-threads 1 --quiet \
  --module "$BUILD/modules/testkit.so" > "$tmp/up.out" &
pids+=($!)
upport=$(gw_wait "$tmp/up.out")
cat > "$tmp/chain.ini" <<INI
[upstream echo]
urls = http://127.0.0.1:$upport/api/v1/endpoint
methods = test.*
max_batch = 100
INI
"$BUILD/jrpcd" --listen 127.0.0.1:0 --io-threads 1 --quiet --config "$tmp/chain.ini" > "$tmp/chain.out" &
pids+=($!)
chport=$(gw_wait "$tmp/chain.out")

printf '%s' '{"jsonrpc":"2.0","method":"eth_blockNumber","params":[],"id":1}' > "$tmp/eth1.json"
printf '%s' '{"jsonrpc":"2.0","method":"eth_getBalance","params":["0x90F8bf6A479f320ead074411a4B0e7944Ea8c9C1","latest"],"id":1}' > "$tmp/bal1.json"
node -e "
  const a = [];
  for (let i = 0; i < 100; i++) a.push({ jsonrpc: '2.0', method: 'eth_blockNumber', params: [], id: i });
  process.stdout.write(JSON.stringify(a));" > "$tmp/eth100.json"
printf '%s' '{"jsonrpc":"2.0","method":"test.echo","params":["0x2f0ea53f92252167d658963f334a91de0824e322",1],"id":1}' > "$tmp/echo1.json"
for f in eth1 bal1 eth100 echo1; do
  cat > "$tmp/$f.lua" <<LUA
local f = io.open("$tmp/$f.json", "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
LUA
done

# Sanity: the gateway really forwards (a broken gateway answering errors fast must not look good).
out=$(curl -s --data-binary "@$tmp/eth1.json" "http://127.0.0.1:$gwport/")
echo "$out" | grep -q '"result":"0x' || { echo "bench: gateway answered $out" >&2; exit 1; }
n=$(curl -s --data-binary "@$tmp/eth100.json" "http://127.0.0.1:$gwport/" | grep -o '"result"' | wc -l)
[ "$n" = 100 ] || { echo "bench: gateway answered $n of 100 results" >&2; exit 1; }
out=$(curl -s --data-binary "@$tmp/bal1.json" "http://127.0.0.1:$gwport/")
echo "$out" | grep -q '"result":"0x3635c9adc5dea00000"' || { echo "bench: gateway answered $out" >&2; exit 1; }
out=$(curl -s --data-binary "@$tmp/echo1.json" "http://127.0.0.1:$chport/")
echo "$out" | grep -q '"result":\["0x2f0e' || { echo "bench: chain answered $out" >&2; exit 1; }

echo
nginx_worker=$(pgrep -P "$pxpid" | head -1)

echo
echo "gateway bench: wrk -t1 -c$CONNS -d$DURATION, $ROUNDS alternating rounds, medians; jrpcd io_threads 1"
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$pxport/" && break; sleep 0.05; done
printf '%-32s %12s %12s %7s %12s %7s\n' case "via jrpcd" "direct" ratio "via nginx" ratio
for f in eth1 bal1 eth100; do
  : > "$tmp/gj.$f"; : > "$tmp/gd.$f"; : > "$tmp/gn.$f"
  for _ in $(seq 1 "$ROUNDS"); do
    gw_rps "http://127.0.0.1:$gport/" "$tmp/$f.lua" "$gwpid" >> "$tmp/gd.$f"
    gw_rps "http://127.0.0.1:$gwport/" "$tmp/$f.lua" "$gwpid" >> "$tmp/gj.$f"
    gw_rps "http://127.0.0.1:$pxport/" "$tmp/$f.lua" "$nginx_worker" >> "$tmp/gn.$f"
  done
  j=$(col 1 < "$tmp/gj.$f" | median); d=$(col 1 < "$tmp/gd.$f" | median)
  x=$(col 1 < "$tmp/gn.$f" | median)
  case $f in
    eth1) label="ganache eth_blockNumber req/s" ;;
    bal1) label="ganache eth_getBalance req/s" ;;
    eth100) label="ganache batch of 100 req/s" ;;
  esac
  ratio=$(awk -v a="$j" -v b="$d" 'BEGIN {printf "%.2f", a / b}')
  xratio=$(awk -v a="$x" -v b="$d" 'BEGIN {printf "%.2f", a / b}')
  printf '%-32s %12s %12s %7s %12s %7s  (target >= 0.9)\n' "$label" "$j" "$d" "$ratio" "$x" "$xratio"
  printf '%-32s %12s %12s %7s %12s\n' "  proxy CPU us per request" "$(col 2 < "$tmp/gj.$f" | median)" \
    "-" "" "$(col 2 < "$tmp/gn.$f" | median)"
  printf '%-32s %12s %12s %7s %12s\n' "    of it user / kernel" \
    "$(col 4 < "$tmp/gj.$f" | median) / $(col 5 < "$tmp/gj.$f" | median)" "-" "" \
    "$(col 4 < "$tmp/gn.$f" | median) / $(col 5 < "$tmp/gn.$f" | median)"
  printf '%-32s %11s%% %11s%% %7s %11s%%\n' "  machine busy (2 cores = 100%)" \
    "$(col 3 < "$tmp/gj.$f" | median)" "$(col 3 < "$tmp/gd.$f" | median)" "" \
    "$(col 3 < "$tmp/gn.$f" | median)"
done

: > "$tmp/cj"; : > "$tmp/cd"; : > "$tmp/lj"; : > "$tmp/ld"
for _ in $(seq 1 "$ROUNDS"); do
  rps "http://127.0.0.1:$upport/api/v1/endpoint" "$tmp/echo1.lua" >> "$tmp/cd"
  rps "http://127.0.0.1:$chport/" "$tmp/echo1.lua" >> "$tmp/cj"
  gw_p50 "http://127.0.0.1:$upport/api/v1/endpoint" "$tmp/echo1.lua" >> "$tmp/ld"
  gw_p50 "http://127.0.0.1:$chport/" "$tmp/echo1.lua" >> "$tmp/lj"
done
j=$(median < "$tmp/cj"); d=$(median < "$tmp/cd")
ratio=$(awk -v a="$j" -v b="$d" 'BEGIN {printf "%.2f", a / b}')
printf '%-32s %12s %12s %7s\n' "jrpcd→jrpcd test.echo req/s" "$j" "$d" "$ratio"
lj=$(median < "$tmp/lj"); ld=$(median < "$tmp/ld")
added=$(awk -v a="$lj" -v b="$ld" 'BEGIN {printf "%.1f", a - b}')
printf '%-32s %12s %12s %7s  (added p50 %s us, target <= 100)\n' "jrpcd→jrpcd p50 latency us" "$lj" "$ld" "-" "$added"

fi # gateway
# ================================================================================================
# Answer sharing (docs/gateway.md#sharing-answers): ganache directly vs jrpcd with dedup only,
# with the cache (eth_blockNumber kept 1 s) and dedup, and distinct eth_getBalance singles (a new
# address each request, so neither dedup nor the cache helps) with auto_batch. wrk -c$CONNS
# keeps that many identical calls in flight, which is what dedup merges.
# ================================================================================================
if want gwcache; then
(cd "$here/.." && exec node -e "
  const s = require('ganache').server({ logging: { quiet: true }, wallet: { deterministic: true },
                                        chain: { chainId: 1337 } });
  s.listen(0, '127.0.0.1', (e) => { if (e) process.exit(1);
                                    console.log('ganache listening on ' + s.address().port); });
") > "$tmp/sh-ganache.out" 2>&1 &
pids+=($!)
sgpid=$!
sgport=
for _ in $(seq 1 600); do
  sgport=$(sed -n 's/^ganache listening on \([0-9][0-9]*\)$/\1/p' "$tmp/sh-ganache.out")
  [ -n "$sgport" ] && break
  sleep 0.05
done
[ -n "$sgport" ] || { echo "bench: ganache did not start: $(cat "$tmp/sh-ganache.out")" >&2; exit 1; }
sh_gw() { # name ini-extra → port of a jrpcd gateway in front of that ganache (admin: sh-NAME.admin)
  printf '[upstream eth]\nurls = http://127.0.0.1:%s/\nmethods = eth_* net_* web3_*\n%b' \
    "$sgport" "$2" > "$tmp/sh-$1.ini"
  free_port > "$tmp/sh-$1.admin"
  "$BUILD/jrpcd" --listen 127.0.0.1:0 --io-threads 1 --quiet --config "$tmp/sh-$1.ini" \
    --admin-listen "127.0.0.1:$(cat "$tmp/sh-$1.admin")" > "$tmp/sh-$1.out" &
  echo $! > "$tmp/sh-$1.pid" # in $(...): pids+= would not reach cleanup
  gw_wait "$tmp/sh-$1.out"
}
p_dedup=$(sh_gw dedup '[cache]\nsize = 0\n')
p_cache=$(sh_gw cache '[cache ttl]\neth_blockNumber = 1s\n')
p_auto=$(sh_gw auto 'auto_batch = on\n')
printf '%s' '{"jsonrpc":"2.0","method":"eth_blockNumber","params":[],"id":1}' > "$tmp/sh-eth1.json"
cat > "$tmp/sh-eth1.lua" <<LUA
local f = io.open("$tmp/sh-eth1.json", "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
LUA
cat > "$tmp/sh-bal.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, string.format(
    '{"jsonrpc":"2.0","method":"eth_getBalance","params":["0x%040x","latest"],"id":%d}', n, n))
end
LUA
# The node's own ceiling for auto_batch: the same distinct calls sent to it in batches of $CONNS,
# the most one upstream batch can hold when wrk keeps $CONNS calls in flight.
cat > "$tmp/sh-bal-batch.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  local t = {}
  for i = 1, $CONNS do
    n = n + 1
    t[i] = string.format(
      '{"jsonrpc":"2.0","method":"eth_getBalance","params":["0x%040x","latest"],"id":%d}', n, n)
  end
  return wrk.format(nil, nil, nil, "[" .. table.concat(t, ",") .. "]")
end
LUA
sh_items() { # name outcome → jrpc_upstream_items_total of that outcome, summed over upstreams
  curl -s "http://127.0.0.1:$(cat "$tmp/sh-$1.admin")/metrics" |
    awk -v o="outcome=\"$2\"" 'index($0, "jrpc_upstream_items_total{") == 1 && index($0, o) {s += $2}
                                 END {print s + 0}'
}
sh_reqs() { # name → upstream HTTP requests sent (jrpc_upstream_requests_total, all URLs)
  curl -s "http://127.0.0.1:$(cat "$tmp/sh-$1.admin")/metrics" |
    awk 'index($0, "jrpc_upstream_requests_total{") == 1 {s += $2} END {print s + 0}'
}
for p in "$p_dedup" "$p_cache" "$p_auto"; do
  out=$(curl -s --data-binary "@$tmp/sh-eth1.json" "http://127.0.0.1:$p/")
  echo "$out" | grep -q '"result":"0x' || { echo "bench: gateway answered $out" >&2; exit 1; }
done
echo
echo "answer sharing bench: wrk -t1 -c$CONNS -d$DURATION, $ROUNDS alternating rounds, medians; jrpcd io_threads 1"
printf '%-40s %12s %12s %7s\n' case "via jrpcd" "direct" ratio
for c in "eth_blockNumber, dedup:$p_dedup:dedup:sh-eth1" \
         "eth_blockNumber, cache 1s + dedup:$p_cache:cache:sh-eth1" \
         "distinct eth_getBalance, auto_batch:$p_auto:auto:sh-bal"; do
  IFS=: read -r label port name lua <<< "$c"
  : > "$tmp/shj"; : > "$tmp/shd"
  for _ in $(seq 1 "$ROUNDS"); do
    gw_rps "http://127.0.0.1:$sgport/" "$tmp/$lua.lua" "$(cat "$tmp/sh-$name.pid")" "$sgpid" \
      >> "$tmp/shd"
    gw_rps "http://127.0.0.1:$port/" "$tmp/$lua.lua" "$(cat "$tmp/sh-$name.pid")" "$sgpid" \
      >> "$tmp/shj"
  done
  j=$(col 1 < "$tmp/shj" | median); d=$(col 1 < "$tmp/shd" | median)
  [ "$lua" = sh-bal ] && d_bal=$d
  printf '%-40s %12s %12s %7s  (target >= 1.5)\n' "$label" "$j" "$d" \
    "$(awk -v a="$j" -v b="$d" 'BEGIN {printf "%.2f", a / b}')"
  ju=$(col 4 < "$tmp/shj" | median); jk=$(col 5 < "$tmp/shj" | median)
  jw=$(col 6 < "$tmp/shj" | median); jn=$(col 7 < "$tmp/shj" | median)
  printf '%-40s %12s %12s\n' "  CPU us per call: wrk" "$jw" "$(col 6 < "$tmp/shd" | median)"
  printf '%-40s %12s %12s\n' "    jrpcd user / kernel" "$ju / $jk" "-"
  printf '%-40s %12s %12s\n' "    node" "$jn" "$(col 7 < "$tmp/shd" | median)"
  printf '%-40s %11s%% %11s%%\n' "  machine busy (2 cores = 100%)" "$(col 3 < "$tmp/shj" | median)" \
    "$(col 3 < "$tmp/shd" | median)"
  # The CPU that 1.5x direct's rate would take at these costs per call, for the three together.
  printf '%-40s %12s\n' "  cores 1.5x direct would take (of 2)" \
    "$(awk -v d="$d" -v w="$jw" -v u="$ju" -v k="$jk" -v n="$jn" \
       'BEGIN {printf "%.2f", 1.5 * d * (w + u + k + n) / 1e6}')"
done
# What bounds the two below 1.5: how much the upstream was still asked, and what the node can do.
f=$(sh_items dedup forwarded); jn=$(sh_items dedup joined)
printf '%-40s %12s\n' "  dedup: calls per upstream call" \
  "$(awk -v f="$f" -v j="$jn" 'BEGIN {printf "%.1f", f ? (f + j) / f : 0}')"
f=$(sh_items auto forwarded); r=$(sh_reqs auto)
printf '%-40s %12s\n' "  auto_batch: calls per upstream request" \
  "$(awk -v f="$f" -v r="$r" 'BEGIN {printf "%.1f", r ? f / r : 0}')"
: > "$tmp/shc"
for _ in $(seq 1 "$ROUNDS"); do rps "http://127.0.0.1:$sgport/" "$tmp/sh-bal-batch.lua" >> "$tmp/shc"; done
c=$(median < "$tmp/shc")
printf '%-40s %12s %12s %7s  (the most auto_batch could reach)\n' \
  "  node alone, batches of $CONNS: calls/s" "$(awk -v c="$c" -v n="$CONNS" 'BEGIN {printf "%.2f", c * n}')" \
  "$d_bal" "$(awk -v c="$c" -v n="$CONNS" -v d="$d_bal" 'BEGIN {printf "%.2f", c * n / d}')"
fi # gwcache
# ================================================================================================
# WebSocket (docs/websocket.md): jrpcd against a Node `ws` server answering the same JSON-RPC
# (bench/ws_peer.mjs), both on one thread (the jrpcd above runs --io-threads 1). bench_ws_load, a
# one-thread C client on the other core, keeps WINDOW text messages in flight per connection and
# counts the answers: a Node client would saturate before either server. Cases: single
# tennis@ping and batches of 20 test.echo (the WebSocket cap), over 1 and 32 connections; each
# alternates the two servers ROUNDS times and prints the median messages/s and the ratio. The
# windows keep both servers busy rather than waiting on round trips (x 128 and x 32 messages on
# one connection, 512 and 128 in flight over 32); jrpcd's ws_max_inflight counts calls that
# outlive their read, which inline ping and echo never do.
# ================================================================================================
WS_SECONDS=${WS_SECONDS:-5}
wsload="$BUILD/bench/bench_ws_load"
if want ws && [ -x "$wsload" ]; then
  (cd "$here/.." && exec node bench/ws_peer.mjs /api/v1/endpoint) > "$tmp/wspeer.out" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 200); do grep -q 'listening on' "$tmp/wspeer.out" 2>/dev/null && break; sleep 0.05; done
  wsport=$(sed -n 's/^listening on \([0-9]*\)$/\1/p' "$tmp/wspeer.out" | head -1)
  printf '%s' '{"jsonrpc":"2.0","method":"tennis@ping","id":1}' > "$tmp/ws1.json"
  node -e "
    const a = [];
    for (let i = 0; i < 20; i++)
      a.push({jsonrpc: '2.0', method: 'test.echo', id: i,
              params: ['0x2f0ea53f92252167d658963f334a91de0824e322', i, {block: 'latest'}]});
    process.stdout.write(JSON.stringify(a));" > "$tmp/ws20.json"
  ws_rate() { # port message conns window expect count → messages/s (the client checks answers)
    "$wsload" 127.0.0.1 "$1" /api/v1/endpoint "$2" "$3" "$4" "$WS_SECONDS" "$5" "$6"
  }
  echo
  echo "WebSocket: bench_ws_load ${WS_SECONDS}s per run, $ROUNDS alternating rounds, medians;" \
       "jrpcd --io-threads 1 vs node bench/ws_peer.mjs (ws $(node -p "require('$here/../node_modules/ws/package.json').version"))"
  printf '%-40s %14s %14s %8s\n' case "jrpcd msg/s" "node ws msg/s" ratio
  for c in single:1:128 single:32:16 batch20:1:32 batch20:32:4; do
    IFS=: read -r kind conns win <<< "$c"
    if [ "$kind" = single ]; then
      msg="$tmp/ws1.json"; expect='"pong"'; count=1
      label="single tennis@ping, $conns conn x $win"
    else
      msg="$tmp/ws20.json"; expect='"result"'; count=20
      label="batch of 20 test.echo, $conns conn x $win"
    fi
    : > "$tmp/wj.$kind$conns"; : > "$tmp/wn.$kind$conns"
    for _ in $(seq 1 "$ROUNDS"); do
      ws_rate "$wsport" "$msg" "$conns" "$win" "$expect" "$count" >> "$tmp/wn.$kind$conns"
      ws_rate "$jport" "$msg" "$conns" "$win" "$expect" "$count" >> "$tmp/wj.$kind$conns"
    done
    j=$(median < "$tmp/wj.$kind$conns"); n=$(median < "$tmp/wn.$kind$conns")
    ratio=$(awk -v a="$j" -v b="$n" 'BEGIN {printf "%.2f", a / b}')
    printf '%-40s %14s %14s %8s  (target 5.0)\n' "$label" "$j" "$n" "$ratio"
  done
fi

# ================================================================================================
# The CLI (issue 15): CLI_CALLS (1,000,000) test.echo calls through `jrpc batch --jsonl` to the
# jrpcd above (io_threads 1; jrpc has the other core), CLI_ROUNDS times, beside (a) `xargs -P 32`
# + curl, one call per process, sampled on CLI_SAMPLE (10,000) calls and scaled, and (b) curl per
# 1000-call chunk, sequential, the script one would write by hand. Every run's output is counted,
# so a run that lost answers cannot look fast. Targets: >= 20x (a), >= 2x (b), >= 300,000 calls/s.
# =========================================================================================
CLI_CALLS=${CLI_CALLS:-1000000}
CLI_SAMPLE=${CLI_SAMPLE:-10000}
CLI_ROUNDS=${CLI_ROUNDS:-2}
CLI_PARALLEL=${CLI_PARALLEL:-4}
if want cli && [ -x "$BUILD/jrpc" ]; then
  url="http://127.0.0.1:$jport/api/v1/endpoint"
  addr=0x2f0ea53f92252167d658963f334a91de0824e322
  seq 1 "$CLI_CALLS" | awk -v a="$addr" '{printf "test.echo [\"%s\", %d]\n", a, $1}' > "$tmp/calls.txt"
  now() { date +%s.%N; }
  rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN {printf "%.0f", n / (b - a)}'; }
  echo
  echo "CLI: $CLI_CALLS test.echo calls, jrpcd --io-threads 1, jrpc batch --jsonl -P $CLI_PARALLEL"
  printf '%-52s %10s %12s\n' case "wall s" "calls/s"
  best=0
  for r in $(seq 1 "$CLI_ROUNDS"); do
    t0=$(now)
    "$BUILD/jrpc" --url "$url" --no-progress batch --jsonl -P "$CLI_PARALLEL" "$tmp/calls.txt" \
      > "$tmp/cli.out" 2> "$tmp/cli.err"
    t1=$(now)
    n=$(grep -c '"result"' "$tmp/cli.out")
    [ "$n" = "$CLI_CALLS" ] || { echo "bench: jrpc answered $n of $CLI_CALLS" >&2; cat "$tmp/cli.err" >&2; exit 1; }
    cr=$(rate "$CLI_CALLS" "$t0" "$t1")
    [ "$cr" -gt "$best" ] && best=$cr
    printf '%-52s %10.2f %12s\n' "jrpc batch --jsonl, round $r" "$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')" "$cr"
  done

  # (a) one curl per call, 32 at a time, on a sample.
  head -n "$CLI_SAMPLE" "$tmp/calls.txt" | awk '{sub(/^test.echo /, ""); printf "{\"jsonrpc\":\"2.0\",\"method\":\"test.echo\",\"params\":%s,\"id\":%d}\n", $0, NR}' > "$tmp/singles.txt"
  t0=$(now)
  xargs -P 32 -d '\n' -I{} curl -s -H 'Content-Type: application/json' --data-binary {} "$url" \
    < "$tmp/singles.txt" > "$tmp/xargs.out"
  t1=$(now)
  n=$(grep -o '"result"' "$tmp/xargs.out" | wc -l)
  [ "$n" = "$CLI_SAMPLE" ] || { echo "bench: xargs+curl answered $n of $CLI_SAMPLE" >&2; exit 1; }
  ar=$(rate "$CLI_SAMPLE" "$t0" "$t1")
  printf '%-52s %10.0f %12s\n' "(a) xargs -P 32 curl, $CLI_SAMPLE calls scaled" "$(awk -v r="$ar" -v n="$CLI_CALLS" 'BEGIN {print n / r}')" "$ar"

  # (b) curl per 1000-call chunk, one after the other.
  mkdir -p "$tmp/chunks"
  awk -v dir="$tmp/chunks" '{
      sub(/^test.echo /, "");
      if ((NR - 1) % 1000 == 0) { if (f) { printf "]" > f; close(f) } f = sprintf("%s/%07d.json", dir, NR); printf "[" > f }
      else printf "," > f;
      printf "{\"jsonrpc\":\"2.0\",\"method\":\"test.echo\",\"params\":%s,\"id\":%d}", $0, NR > f
    } END { if (f) printf "]" > f }' "$tmp/calls.txt"
  t0=$(now)
  for f in "$tmp"/chunks/*.json; do
    curl -s -H 'Content-Type: application/json' --data-binary "@$f" "$url"
    echo
  done > "$tmp/chunks.out"
  t1=$(now)
  n=$(grep -o '"result"' "$tmp/chunks.out" | wc -l)
  [ "$n" = "$CLI_CALLS" ] || { echo "bench: curl chunks answered $n of $CLI_CALLS" >&2; exit 1; }
  br=$(rate "$CLI_CALLS" "$t0" "$t1")
  printf '%-52s %10.2f %12s\n' "(b) curl per 1000-call chunk, sequential" "$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')" "$br"
  awk -v j="$best" -v a="$ar" -v b="$br" 'BEGIN {
    printf "jrpc (best round) vs (a): %.1fx (target 20)   vs (b): %.2fx (target 2)   %d calls/s (target 300000)\n", j / a, j / b, j }'
fi

# ================================================================================================
# Budgets in Redis (docs/keys.md), with ONLY=keys or ONLY=redis: the same key with budgets kept
# in the process and in Redis, against keys off (the jrpcd above). Three jrpcd with io_threads 1;
# the key's rate and burst are so high that nothing is refused, so each row measures what keeping
# the budget costs. Then the
# Redis round trips per HTTP request: a fixed number of requests (node, keep-alive, 8 at a time)
# and the EVALSHA calls Redis counted meanwhile (INFO commandstats): the target is exactly 1.
# ================================================================================================
if { want redis || want keys; } && command -v redis-server > /dev/null; then
  rport=$(free_port)
  redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
    --loglevel warning > "$tmp/redis.out" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do redis-cli -p "$rport" ping 2>/dev/null | grep -q PONG && break; sleep 0.05; done
  secret=bench-budget-key-0123456789
  keys_ini() { # file [redis url]
    cat > "$1" <<INI
[auth]
required = on
path_prefix = /v2

[key bench]
secret = $secret
rate = 1000000000
burst = 1000000000
INI
    if [ -n "${2:-}" ]; then printf '\n[redis]\nurl = %s\n' "$2" >> "$1"; fi
  }
  keys_ini "$tmp/keys-local.ini"
  keys_ini "$tmp/keys-redis.ini" "redis://127.0.0.1:$rport"
  for k in local redis; do
    "$BUILD/jrpcd" --listen 127.0.0.1:0 --io-threads 1 --quiet --config "$tmp/keys-$k.ini" \
      --module "$BUILD/modules/tennis.so" --module "$BUILD/modules/testkit.so" > "$tmp/k-$k.out" &
    pids+=($!)
  done
  for _ in $(seq 1 100); do grep -q 'listening on' "$tmp/k-local.out" "$tmp/k-redis.out" 2>/dev/null &&
    [ "$(cat "$tmp/k-local.out" "$tmp/k-redis.out" | grep -c 'listening on')" = 2 ] && break; sleep 0.05; done
  lport=$(sed -n 's/^jrpcd listening on .*:\([0-9]*\)$/\1/p' "$tmp/k-local.out" | head -1)
  rjport=$(sed -n 's/^jrpcd listening on .*:\([0-9]*\)$/\1/p' "$tmp/k-redis.out" | head -1)
  # Sanity: both serve the key, and the Redis one really reserves in Redis.
  for p in "$lport" "$rjport"; do
    n=$(curl -s --data-binary "@$tmp/batch100.json" "http://127.0.0.1:$p/v2/$secret" | grep -o '"result"' | wc -l)
    [ "$n" = 100 ] || { echo "bench: keyed jrpcd on $p answered $n of 100 results" >&2; exit 1; }
  done
  redis-cli -p "$rport" info commandstats | grep -q '^cmdstat_evalsha:calls=[1-9]' ||
    { echo "bench: the keyed jrpcd did not reserve in Redis" >&2; exit 1; }

  echo
  echo "budgets bench: wrk -t1 -c$CONNS -d$DURATION, $ROUNDS alternating rounds, medians; jrpcd io_threads 1, redis-server on loopback"
  printf '%-24s %12s %12s %12s %9s %9s\n' case "keys off" "local" "redis" "loc/off" "red/off"
  for f in single batch100; do
    : > "$tmp/ko.$f"; : > "$tmp/kl.$f"; : > "$tmp/kr.$f"
    for _ in $(seq 1 "$ROUNDS"); do
      rps "http://127.0.0.1:$jport/api/v1/endpoint" "$tmp/$f.lua" >> "$tmp/ko.$f"
      rps "http://127.0.0.1:$lport/v2/$secret" "$tmp/$f.lua" >> "$tmp/kl.$f"
      rps "http://127.0.0.1:$rjport/v2/$secret" "$tmp/$f.lua" >> "$tmp/kr.$f"
    done
    o=$(median < "$tmp/ko.$f"); l=$(median < "$tmp/kl.$f"); r=$(median < "$tmp/kr.$f")
    case $f in single) label="single tennis@ping" ;; batch100) label="batch of 100 test.echo" ;; esac
    printf '%-24s %12s %12s %12s %9s %9s\n' "$label" "$o" "$l" "$r" \
      "$(awk -v a="$l" -v b="$o" 'BEGIN {printf "%.3f", a / b}')" \
      "$(awk -v a="$r" -v b="$o" 'BEGIN {printf "%.3f", a / b}')"
  done
  calls() { redis-cli -p "$rport" info commandstats | sed -n 's/^cmdstat_\(evalsha\|eval\):calls=\([0-9]*\).*/\2/p' |
            awk '{s += $1} END {print s + 0}'; }
  reqs=2000
  c0=$(calls)
  (cd "$here/.." && node -e "
    const http = require('http');
    const body = require('fs').readFileSync(process.argv[1]);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    let left = +process.argv[2], running = 0, bad = 0;
    const next = () => {
      if (left === 0) { if (running === 0) { agent.destroy(); process.exit(bad ? 1 : 0); } return; }
      left--; running++;
      const rq = http.request({ host: '127.0.0.1', port: +process.argv[3], path: process.argv[4],
                                method: 'POST', agent }, (res) => {
        let n = 0; res.on('data', (d) => { n += d.length; });
        res.on('end', () => { if (res.statusCode !== 200) bad++; running--; next(); });
      });
      rq.end(body);
    };
    for (let i = 0; i < 8; i++) next();" "$tmp/batch100.json" "$reqs" "$rjport" "/v2/$secret")
  c1=$(calls)
  echo "redis round trips: $((c1 - c0)) EVALSHA for $reqs HTTP requests of 100 calls:" \
       "$(awk -v a="$((c1 - c0))" -v b="$reqs" 'BEGIN {printf "%.3f", a / b}') per request (target exactly 1)"
fi # redis
# Streaming and compression (docs/compression.md). A jrpcd of its own (io_threads 1, 8 workers):
# - a 1000-item batch with mixed latencies: time to first byte, to the whole answer, and jrpcd's
#   peak RSS, buffered (HTTP/1.0) vs streamed (bench/stream.mjs);
# - gzip on an eth_getLogs-shaped answer: bytes saved, and jrpcd's CPU per MB compressed (its
#   utime + stime over wrk's requests with Accept-Encoding: gzip, minus the same without);
# - a batch of 100 test.echo without Accept-Encoding: req/s of this build, and of BASE_BUILD (a
#   build of the branch point) when given, alternating, to show it unchanged within noise.
# ================================================================================================
if want stream; then
"$BUILD/jrpcd" --listen 127.0.0.1:0 --io-threads 1 --workers 8 --quiet \
  --module "$BUILD/modules/tennis.so" --module "$BUILD/modules/testkit.so" > "$tmp/jrpcd-s.out" &
spid=$!
pids+=($spid)
for _ in $(seq 1 100); do grep -q 'listening on' "$tmp/jrpcd-s.out" 2>/dev/null && break; sleep 0.05; done
sport=$(sed -n 's/.*listening on .*:\([0-9]*\)$/\1/p' "$tmp/jrpcd-s.out" | head -1)
echo
build_abs=$(cd "$BUILD" && pwd)
(cd "$here/.." && node bench/stream.mjs ttfb "$build_abs")

(cd "$here/.." && node bench/stream.mjs logs 1000) > "$tmp/logs.json"
plain=$(curl -s --data-binary "@$tmp/logs.json" -o "$tmp/logs.plain" -w '%{size_download}' "http://127.0.0.1:$sport/")
gz=$(curl -s --data-binary "@$tmp/logs.json" -H 'Accept-Encoding: gzip' -o "$tmp/logs.gz" -w '%{size_download}' "http://127.0.0.1:$sport/")
gunzip -c < "$tmp/logs.gz" | cmp -s - "$tmp/logs.plain" || { echo "bench: gzip answer differs" >&2; exit 1; }
for f in logs logsgz; do
  { echo "local f = io.open(\"$tmp/logs.json\", \"rb\")"
    echo 'wrk.method = "POST"'; echo 'wrk.body = f:read("*a")'; echo 'f:close()'
    echo 'wrk.headers["Content-Type"] = "application/json"'
    [ "$f" = logsgz ] && echo 'wrk.headers["Accept-Encoding"] = "gzip"'
  } > "$tmp/$f.lua"
done
s_cpu() { # lua → "requests cpu-ticks" of jrpcd over one wrk run
  local t0 t1 out
  t0=$(awk '{print $14 + $15}' "/proc/$spid/stat")
  out=$(wrk -t1 -c4 -d"$DURATION" -s "$1" "http://127.0.0.1:$sport/")
  t1=$(awk '{print $14 + $15}' "/proc/$spid/stat")
  echo "$out" | awk -v t="$((t1 - t0))" '/ requests in / { print $1, t }'
}
: > "$tmp/cg"; : > "$tmp/cp"
for _ in $(seq 1 "$ROUNDS"); do
  s_cpu "$tmp/logs.lua" >> "$tmp/cp"
  s_cpu "$tmp/logsgz.lua" >> "$tmp/cg"
done
hz=$(getconf CLK_TCK)
us_per() { awk -v hz="$hz" '{ printf "%.1f\n", $2 * 1e6 / hz / $1 }' "$1" | median; }
up=$(us_per "$tmp/cp"); ug=$(us_per "$tmp/cg")
echo
echo "gzip (level 1) on an eth_getLogs-shaped answer of 1000 logs, wrk -t1 -c4 -d$DURATION, $ROUNDS rounds, medians"
awk -v p="$plain" -v g="$gz" -v up="$up" -v ug="$ug" 'BEGIN {
  printf "  answer %d bytes, gzip %d bytes: %.1f%% saved (%.1fx)\n", p, g, 100 * (1 - g / p), p / g
  printf "  jrpcd CPU per request: %.1f us plain, %.1f us gzip: %.0f us per MB compressed\n", up, ug, (ug - up) / (p / 1e6) }'

# req/s swings with the neighbours' load on a shared machine: jrpcd's CPU per request (utime +
# stime over wrk's requests) is printed too, and is what to compare.
echo
echo "batch of 100 test.echo without Accept-Encoding, wrk -t1 -c$CONNS -d$DURATION, $ROUNDS alternating rounds, medians"
bpid=
if [ -n "${BASE_BUILD:-}" ]; then
  "$BASE_BUILD/jrpcd" --listen 127.0.0.1:0 --io-threads 1 --quiet \
    --module "$BASE_BUILD/modules/tennis.so" --module "$BASE_BUILD/modules/testkit.so" > "$tmp/jrpcd-b.out" &
  bpid=$!
  pids+=($bpid)
  for _ in $(seq 1 100); do grep -q 'listening on' "$tmp/jrpcd-b.out" 2>/dev/null && break; sleep 0.05; done
  bport=$(sed -n 's/.*listening on .*:\([0-9]*\)$/\1/p' "$tmp/jrpcd-b.out" | head -1)
fi
b_cpu() { # port pid → "req/s cpu-us-per-request"
  local t0 t1 out
  t0=$(awk '{print $14 + $15}' "/proc/$2/stat")
  out=$(wrk -t1 -c"$CONNS" -d"$DURATION" -s "$tmp/batch100.lua" "http://127.0.0.1:$1/api/v1/endpoint")
  t1=$(awk '{print $14 + $15}' "/proc/$2/stat")
  echo "$out" | awk -v t="$((t1 - t0))" -v hz="$hz" '/ requests in / { n = $1 } /Requests\/sec/ { r = $2 }
    END { printf "%s %.1f\n", r, t * 1e6 / hz / n }'
}
: > "$tmp/b.this"; : > "$tmp/b.base"
for _ in $(seq 1 "$ROUNDS"); do
  b_cpu "$sport" "$spid" >> "$tmp/b.this"
  [ -n "$bpid" ] && b_cpu "$bport" "$bpid" >> "$tmp/b.base"
done
t=$(awk "{print \$1}" "$tmp/b.this" | median); tc=$(awk "{print \$2}" "$tmp/b.this" | median)
printf '  this build: %s req/s, %s us CPU per request\n' "$t" "$tc"
if [ -n "$bpid" ]; then
  b=$(awk "{print \$1}" "$tmp/b.base" | median); bc=$(awk "{print \$2}" "$tmp/b.base" | median)
  printf '  base build: %s req/s, %s us CPU per request; CPU ratio %s\n' "$b" "$bc" \
    "$(awk -v a="$tc" -v b="$bc" 'BEGIN {printf "%.3f", a / b}')"
fi
fi # stream
