#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench/valgrind.sh BUILD_DIR — runs the integration suite with every jrpcd under valgrind's
# memcheck and prints the leak summary of each run and their sum. Not part of `make test`: under
# valgrind jrpcd is 20-50x slower, so timing checks in the suite may fail; the point is the leak
# and error counts, which do not depend on speed.
set -uo pipefail
BUILD=${1:-build}
here=$(cd "$(dirname "$0")/.." && pwd)
command -v valgrind >/dev/null || { echo "valgrind: apt-get install valgrind" >&2; exit 2; }
logs=$(mktemp -d)
cat > "$logs/jrpcd" <<WRAP
#!/bin/sh
exec valgrind --leak-check=full --show-leak-kinds=definite,indirect,possible \
  --errors-for-leak-kinds=definite --log-file=$logs/vg.%p.log "$here/$BUILD/jrpcd" "\$@"
WRAP
chmod +x "$logs/jrpcd"
cd "$here"
JRPCD="$logs/jrpcd" JRPC_CLI="$here/$BUILD/jrpc" JRPC_MODULES="$here/$BUILD/modules" JRPC_SOURCE_DIR="$here" \
  node --test --test-concurrency=1 tests/integration/*.test.mjs > "$logs/suite.txt" 2>&1
echo "suite under valgrind: $(grep -E '^# (pass|fail)' "$logs/suite.txt" | tr '\n' ' ')(timing checks may fail under valgrind)"
runs=$(ls "$logs"/vg.*.log 2>/dev/null | wc -l)
# Each run ends with a LEAK SUMMARY and an ERROR SUMMARY; a run ended by a second SIGTERM
# (which exits at once, on purpose) leaves its in-flight requests as "possibly lost".
awk '/definitely lost:/ {d += $4} /indirectly lost:/ {i += $4} /possibly lost:/ {p += $4}
     /ERROR SUMMARY:/ {e += $4}
     END {printf "valgrind memcheck over %d jrpcd runs: definitely lost %d bytes, indirectly lost %d bytes, possibly lost %d bytes, errors %d\n", '"$runs"', d, i, p, e}' "$logs"/vg.*.log
grep -l "definitely lost: [1-9]\|Invalid \|uninitialised" "$logs"/vg.*.log | head -5 | while read -r f; do
  echo "--- $f"; head -60 "$f"; done
echo "logs: $logs"
