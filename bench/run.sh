#!/usr/bin/env bash
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
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
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
