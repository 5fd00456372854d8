/* SPDX-License-Identifier: MIT */
/* zstream.h — zlib streams (gzip over HTTP, permessage-deflate over WebSocket) whose memory is
 * counted in a connection's account, so a deflate state (about 256 KiB at zlib's defaults) is
 * bounded by max_memory like the answers it compresses. Loop thread only. */
#ifndef JRPC_IO_ZSTREAM_H
#define JRPC_IO_ZSTREAM_H

#include "internal.h"

#include <zlib.h>

typedef struct jrpc__zs {
    z_stream z;         /* zlib's state; z.opaque = this */
    jrpc__loop_t *loop; /* whose totals the state counts in */
    jrpc__acct_t *acct; /* the connection's account (a reference while live) */
    size_t held;        /* bytes zlib allocated, counted in acct */
    uint8_t live;       /* init succeeded, end not yet called */
    uint8_t is_inflate; /* inflate, else deflate */
    uint8_t tr;         /* whose state gauge it counts in: JRPC__TR_WS for raw deflate
                           (permessage-deflate), else JRPC__TR_HTTP (gzip) */
} jrpc__zs_t;

/* window_bits as zlib takes them: 9..15 for raw deflate when negated (permessage-deflate), +16
 * for a gzip wrapper; the state counts in the loop's jrpc_compression_state_bytes under ws for
 * the former, http for the latter. mem_level 1..9 (8 is zlib's default). 0, JRPC_ENOMEM or
 * JRPC_EINVAL. */
int jrpc__zs_deflate_init(jrpc__zs_t *zs, jrpc__loop_t *loop, jrpc__acct_t *acct, int level,
                          int window_bits, int mem_level);
int jrpc__zs_inflate_init(jrpc__zs_t *zs, jrpc__loop_t *loop, jrpc__acct_t *acct, int window_bits);
/* Frees zlib's state and gives its bytes back (no-op when not live). */
void jrpc__zs_end(jrpc__zs_t *zs);

/* Compresses in[0..n) and appends the output to out; flush is zlib's (Z_NO_FLUSH, Z_SYNC_FLUSH,
 * Z_FINISH). 0, or JRPC_ENOMEM (out's sticky error is set too). */
int jrpc__zs_deflate(jrpc__zs_t *zs, const void *in, size_t n, int flush, jrpc_buf_t *out);

/* Decompresses in[0..n), appending to out, which never grows past max bytes: out is grown by
 * doubling up to max, so a small input that inflates far (a "bomb") costs at most max bytes of
 * output and no more work than it takes to reach max. *used: input bytes consumed.
 * 1: the stream ended (bytes after *used follow it); 0: all input taken, more may come;
 * JRPC_ERANGE: the output would pass max; JRPC_EINVAL: not valid compressed data;
 * JRPC_ENOMEM. */
int jrpc__zs_inflate(jrpc__zs_t *zs, const void *in, size_t n, size_t *used, jrpc_buf_t *out,
                     size_t max);

#endif
