#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# format.sh SOURCE_DIR — fails when a tracked C source or header is not as clang-format would
# write it under the repository's .clang-format. Fuzz corpora are left out: they are inputs, not
# code. ctest runs it (tests/CMakeLists.txt) and counts exit 77, clang-format missing, as skipped;
# `make format` rewrites the files it names. It also fails when a tracked source file (C, Node,
# shell, CMake, SQL) has no SPDX license line within its first two lines.
set -euo pipefail
cd "${1:?usage: tests/format.sh SOURCE_DIR}"

if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  unlicensed=0
  while IFS= read -r f; do
    if ! head -2 "$f" | grep -q 'SPDX-License-Identifier: MIT'; then
      echo "format: $f: no SPDX-License-Identifier line in its first two lines" >&2
      unlicensed=1
    fi
  done < <(git ls-files -- '*.c' '*.h' '*.mjs' '*.sh' '*.cmake' '*CMakeLists.txt' Makefile \
             '*.service.in' '*.sql' '.ci/*' ':!:fuzz/corpus/**')
  [ "$unlicensed" = 0 ] || exit 1
fi

if ! command -v clang-format >/dev/null 2>&1; then
  echo "format: SKIPPED: clang-format is not installed (scripts/setup.sh installs it)"
  exit 77
fi

if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files -- '*.c' '*.h' ':!:fuzz/corpus/**')
else # an exported tree without .git: the same set, found on disk
  mapfile -t files < <(find . \( -path ./node_modules -o -path './build*' -o -path ./fuzz/corpus \
                                 -o -path ./.git \) -prune -o -type f \( -name '*.c' -o -name '*.h' \) \
                              -print | sort)
fi
if [ ${#files[@]} -eq 0 ]; then
  echo "format: no C files found under $PWD" >&2
  exit 1
fi

echo "format: $(clang-format --version | head -1); ${#files[@]} files"
if ! clang-format --style=file --dry-run -Werror "${files[@]}"; then
  echo "format: the files above differ from .clang-format; run \`make format\`" >&2
  exit 1
fi
