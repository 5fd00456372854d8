#!/usr/bin/env bash
# install.sh SOURCE_DIR BUILD_DIR — installs the build into a temporary prefix and builds programs
# against it with pkg-config alone, as a user would after `cmake --install`: the gateway's
# header, library and jrpc-upstream.pc must be there and enough to link and run its API.
set -euo pipefail
src=$(realpath "${1:?usage: install.sh SOURCE_DIR BUILD_DIR}")
build=$(realpath "${2:?usage: install.sh SOURCE_DIR BUILD_DIR}")
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(dirname "$(dirname "$(find "$prefix" -name jrpc.pc -print -quit)")")
export PKG_CONFIG_PATH=$libdir/pkgconfig
flags=$(pkg-config --define-prefix --cflags --libs jrpc-upstream)
echo "install: pkg-config --cflags --libs jrpc-upstream: $flags"
# The sanitizer builds' libraries need the same runtime in the program.
san=()
[ -n "${JRPC_SANITIZE:-}" ] && san=(-fsanitize="$JRPC_SANITIZE")
cc "${san[@]}" -Wall -Werror "$src/tests/install/upstream.c" -o "$prefix/upstream" $flags
LD_LIBRARY_PATH=$libdir "$prefix/upstream"
