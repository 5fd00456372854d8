#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# layering.sh SOURCE_DIR BUILD_DIR — checks that dependencies under src/ run one way (STYLE.md):
#   util < json < io < rpc < ws < http < server (src/server.c) ; upstream sits beside the server.
# A file may include headers of its own layer or below, and an object file may use symbols
# (jrpc_* and jrpc__*) defined in its own layer or below; a lower layer reaches an upper one only
# through hooks it is given at init. The gateway library (src/upstream) is a client of the public
# API: besides its own it may use only the JSON core (src/json, src/util), which it links in
# privately, and no other jrpc__ symbol.
# Prints every upward include and symbol use, and exits 1 if there is any.
set -euo pipefail
src=$(realpath "${1:?usage: layering.sh SOURCE_DIR BUILD_DIR}")/src
build=$(realpath "${2:?usage: layering.sh SOURCE_DIR BUILD_DIR}")

rank() {
  case "$1" in
    util) echo 0 ;; json) echo 1 ;; io) echo 2 ;; rpc) echo 3 ;; ws) echo 4 ;; http) echo 5 ;;
    server) echo 6 ;; upstream) echo 7 ;; *) echo -1 ;;
  esac
}
# The layer of a path relative to src/: its folder, or "server" for the files at the top.
layer_of() {
  case "$1" in */*) echo "${1%%/*}" ;; *) echo server ;; esac
}

bad=0
checked_includes=0
# ---- Includes ----------------------------------------------------------------------------------
while IFS= read -r file; do
  rel=${file#"$src"/}
  from=$(layer_of "$rel")
  dir=$(dirname "$file")
  while IFS= read -r inc; do
    target=$(realpath -m "$dir/$inc")
    case "$target" in "$src"/*) ;; *) continue ;; esac # jrpc.h, system headers
    to=$(layer_of "${target#"$src"/}")
    checked_includes=$((checked_includes + 1))
    if [ "$from" = upstream ]; then
      [ "$to" = upstream ] || [ "$to" = util ] || [ "$to" = json ] && continue
    elif [ "$(rank "$to")" -le "$(rank "$from")" ]; then
      continue
    fi
    echo "layering: $rel ($from) includes $inc ($to)"
    bad=1
  done < <(sed -n 's/^#include "\(.*\)"/\1/p' "$file")
done < <(find "$src" -name '*.[ch]' | sort)

# ---- Symbols -----------------------------------------------------------------------------------
# Objects of sources that still exist (a renamed file leaves its old object behind).
objs=$(find "$build/CMakeFiles/jrpc_core.dir" "$build/CMakeFiles/jrpc_objs.dir" \
            "$build/CMakeFiles/jrpc_upstream.dir" -name '*.o' 2>/dev/null | sort |
       while IFS= read -r o; do r=${o#*.dir/src/}; [ -f "$src/${r%.o}" ] && echo "$o"; done)
[ -n "$objs" ] || { echo "layering: no object files under $build" >&2; exit 1; }
# Where each jrpc symbol is defined: "symbol layer".
defs=$(for o in $objs; do
  rel=${o#*.dir/src/}
  layer=$(layer_of "${rel%.o}")
  nm --defined-only "$o" | awk -v l="$layer" '$2 ~ /^[TDBR]$/ && $3 ~ /^jrpc_/ {print $3, l}'
done | sort -u)
checked_symbols=0
for o in $objs; do
  rel=${o#*.dir/src/}
  rel=${rel%.o}
  from=$(layer_of "$rel")
  while IFS= read -r sym; do
    to=$(awk -v s="$sym" '$1 == s {print $2; exit}' <<<"$defs")
    [ -n "$to" ] || continue
    checked_symbols=$((checked_symbols + 1))
    if [ "$from" = upstream ]; then
      # its own, and the JSON core it links in privately (libjrpc_upstream carries a copy)
      [ "$to" = upstream ] || [ "$to" = json ] || [ "$to" = util ] && continue
      case "$sym" in jrpc__*) ;; *) continue ;; esac # the public API is what it may use
    elif [ "$(rank "$to")" -le "$(rank "$from")" ]; then
      continue
    fi
    echo "layering: $rel ($from) uses $sym ($to)"
    bad=1
  done < <(nm --undefined-only "$o" | awk '$2 ~ /^jrpc_/ {print $2}' | sort -u)
done
echo "layering: $checked_includes includes and $checked_symbols symbol uses across src/ checked"
[ "$bad" = 0 ] && echo "layering: one way" || echo "layering: upward dependencies found" >&2
exit "$bad"
