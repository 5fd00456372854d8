#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# install.sh SOURCE_DIR BUILD_DIR — installs the build into a temporary prefix as a user would with
# `cmake --install --prefix P`, then checks what goes where and that the install is enough on its
# own: with pkg-config alone (no path into the source tree) it builds the README's embedding
# example, an out-of-tree module and a gateway client; the example and the installed jrpcd with
# that module serve a call. Also the example config, the systemd unit (systemd-analyze verify when
# there) and the man pages (when the build made them: JRPC_MAN).
set -euo pipefail
src=$(realpath "${1:?usage: install.sh SOURCE_DIR BUILD_DIR}")
build=$(realpath "${2:?usage: install.sh SOURCE_DIR BUILD_DIR}")
work=$(mktemp -d)
prefix=$work/prefix
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
fail() {
    echo "install: FAIL: $*" >&2
    exit 1
}

cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(dirname "$(dirname "$(find "$prefix" -name jrpc.pc -print -quit)")")
for f in bin/jrpcd bin/jrpc include/jrpc.h include/jrpc/upstream.h etc/jrpc/jrpcd.ini \
         lib/systemd/system/jrpcd.service share/doc/jrpc/LICENSE; do
    [ -s "$prefix/$f" ] || fail "$f is not installed"
done
for f in libjrpc.so libjrpc_upstream.so pkgconfig/jrpc.pc pkgconfig/jrpc-upstream.pc \
         jrpc/modules/tennis.so jrpc/modules/spec.so jrpc/modules/ledger.so; do
    [ -s "$libdir/$f" ] || fail "${libdir#"$prefix"/}/$f is not installed"
done

# The pkg-config files name the prefix given at install time, not the configured one.
export PKG_CONFIG_PATH=$libdir/pkgconfig
for pc in jrpc jrpc-upstream; do
    got=$(pkg-config --variable=prefix "$pc")
    [ "$got" = "$prefix" ] || fail "$pc.pc says prefix=$got, installed into $prefix"
done
flags=$(pkg-config --cflags --libs jrpc)
echo "install: pkg-config --cflags --libs jrpc: $flags"
case "$flags" in *"$src"*) fail "pkg-config points into the source tree: $flags" ;; esac

# The sanitizer builds' libraries need the same runtime in the program.
san=()
[ -n "${JRPC_SANITIZE:-}" ] && san=(-fsanitize="$JRPC_SANITIZE")

# Waits (bounded: 10 s) until URL answers BODY; prints the answer.
call() {
    local url=$1 body=$2 out
    for _ in $(seq 100); do
        if out=$(curl -sS --max-time 5 -H 'Content-Type: application/json' -d "$body" "$url" \
                 2>/dev/null); then
            echo "$out"
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# 1. The README's embedding example, as printed there, on a free port instead of 8000.
port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",
                ()=>{console.log(s.address().port);s.close()})')
awk '/^## Embedding/{e=1} e&&/^```c/{c=1;next} c&&/^```/{exit} c' "$src/README.md" \
    | sed "s/127\.0\.0\.1:8000/127.0.0.1:$port/" >"$work/embed.c"
grep -q jrpc_server_run "$work/embed.c" || fail "no embedding example found in README.md"
cc "${san[@]}" -Wall -Werror "$work/embed.c" -o "$work/embed" $flags
LD_LIBRARY_PATH=$libdir "$work/embed" &
pids+=($!)
got=$(call "http://127.0.0.1:$port/" '{"jsonrpc":"2.0","id":1,"method":"tennis@ping"}') ||
    fail "the README's example did not answer on port $port"
[ "$got" = '{"jsonrpc":"2.0","result":"pong","id":1}' ] || fail "README example answered $got"
echo "install: README example: $got"

# 2. An out-of-tree module, served by the installed jrpcd (which finds libjrpc by itself).
cc "${san[@]}" -Wall -Werror -shared -fPIC "$src/tests/install/module.c" -o "$work/outoftree.so" \
    $flags
"$prefix/bin/jrpcd" --listen 127.0.0.1:0 --module "$work/outoftree.so" >"$work/out" 2>"$work/err" &
jrpcd=$!
pids+=($jrpcd)
for _ in $(seq 100); do
    grep -q "listening on" "$work/out" && break
    kill -0 "$jrpcd" 2>/dev/null || fail "installed jrpcd exited: $(cat "$work/err")"
    sleep 0.1
done
addr=$(sed -n 's/^jrpcd listening on //p' "$work/out")
[ -n "$addr" ] || fail "installed jrpcd did not print its address: $(cat "$work/err")"
url=http://$addr/api/v1/endpoint
got=$(call "$url" '{"jsonrpc":"2.0","id":7,"method":"outoftree@hello"}') || fail "no answer at $url"
[ "$got" = '{"jsonrpc":"2.0","result":"hello from an installed jrpc","id":7}' ] ||
    fail "module answered $got"
echo "install: out-of-tree module in installed jrpcd: $got"
# The installed CLI runs too (its RUNPATH finds libjrpc) and the server is still healthy.
got=$("$prefix/bin/jrpc" --url "$url" call outoftree@hello) || fail "installed jrpc CLI failed"
[ "$got" = '"hello from an installed jrpc"' ] || fail "jrpc call printed $got"
kill -TERM "$jrpcd"
wait "$jrpcd" || fail "installed jrpcd exited with $? after SIGTERM: $(cat "$work/err")"

# 3. The gateway's header, library and jrpc-upstream.pc.
cc "${san[@]}" -Wall -Werror "$src/tests/install/upstream.c" -o "$work/upstream" \
    $(pkg-config --cflags --libs jrpc-upstream)
LD_LIBRARY_PATH=$libdir "$work/upstream"

# 4. The example config serves the installed modules: jrpcd --check loads them all (with the
# ledger's database moved from the system state directory into the temporary one).
ini=$prefix/etc/jrpc/jrpcd.ini
grep -qx "path = $libdir/jrpc/modules/tennis.so" "$ini" || fail "jrpcd.ini: no installed tennis"
sed "s|^args = /var/lib/jrpc/|args = $work/state/|" "$ini" >"$work/jrpcd.ini"
"$prefix/bin/jrpcd" --check --config "$work/jrpcd.ini" >/dev/null ||
    fail "jrpcd --check refuses the installed jrpcd.ini"
echo "install: jrpcd --check accepts the installed jrpcd.ini"

# 5. The unit starts this install's jrpcd with this install's config.
unit=$prefix/lib/systemd/system/jrpcd.service
grep -qx "ExecStart=$prefix/bin/jrpcd --config $ini" "$unit" || fail "jrpcd.service: ExecStart"
grep -qx "Type=notify" "$unit" || fail "jrpcd.service is not Type=notify"
if command -v systemd-analyze >/dev/null; then
    # Its man: references are looked up in the system's man path, which is not the prefix. A
    # misspelt key is only a warning there ("Unknown key ..., ignoring"): any output fails too.
    out=$(systemd-analyze verify --man=no "$unit" 2>&1) && [ -z "$out" ] ||
        fail "systemd-analyze verify rejects jrpcd.service: $out"
    echo "install: systemd-analyze verify accepts jrpcd.service"
else
    echo "install: systemd-analyze not found: jrpcd.service not verified"
fi

# 6. Man pages.
if [ "${JRPC_MAN:-0}" = 1 ]; then
    for page in man8/jrpcd.8 man1/jrpc.1 man5/jrpcd.ini.5; do
        name=$(basename "$page")
        grep -q "^\.TH \"${name%.*}\" \"${name##*.}\"" "$prefix/share/man/$page" 2>/dev/null ||
            fail "man page $page is not installed"
    done
    echo "install: man pages jrpcd(8), jrpc(1), jrpcd.ini(5) installed"
else
    echo "install: scdoc was not found at configure time: man pages not checked"
fi
