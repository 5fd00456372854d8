#!/usr/bin/env bash
# format.sh SOURCE_DIR — fails when a tracked C source or header is not as clang-format would
# write it under the repository's .clang-format. Fuzz corpora are left out: they are inputs, not
# code. ctest runs it (tests/CMakeLists.txt) and counts exit 77, clang-format missing, as skipped;
# `make format` rewrites the files it names.
set -euo pipefail
cd "${1:?usage: tests/format.sh SOURCE_DIR}"

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
