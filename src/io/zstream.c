/* SPDX-License-Identifier: MIT */
/* zstream.c — zlib streams whose allocations are counted in a connection's account (zlib's
 * zalloc/zfree hooks), and the loops that drive them into growable buffers with an output bound.
 */
#include "zstream.h"

#include <stdlib.h>
#include <string.h>

/* Each allocation carries its size in front, for zfree (which zlib calls without one). The
 * header is 16 bytes so zlib's structures keep malloc's alignment. */
#define ZS_HDR 16

static voidpf zs_alloc(voidpf opaque, uInt items, uInt size)
{
    jrpc__zs_t *zs = opaque;
    size_t n = (size_t)items * size;
    if (size != 0 && n / size != items)
        return Z_NULL;
    unsigned char *p = malloc(n + ZS_HDR);
    if (p == NULL)
        return Z_NULL;
    memcpy(p, &n, sizeof n);
    zs->held += n + ZS_HDR;
    jrpc__acct_held(zs->loop, zs->acct, (ptrdiff_t)(n + ZS_HDR));
    jrpc__ctr_add(&zs->loop->stats.z_state[zs->tr], n + ZS_HDR);
    return p + ZS_HDR;
}

static void zs_free(voidpf opaque, voidpf address)
{
    jrpc__zs_t *zs = opaque;
    unsigned char *p = (unsigned char *)address - ZS_HDR;
    size_t n;
    memcpy(&n, p, sizeof n);
    zs->held -= n + ZS_HDR;
    jrpc__acct_held(zs->loop, zs->acct, -(ptrdiff_t)(n + ZS_HDR));
    jrpc__ctr_add(&zs->loop->stats.z_state[zs->tr], -(uint64_t)(n + ZS_HDR)); /* wraps back */
    free(p);
}

static void zs_prep(jrpc__zs_t *zs, jrpc__loop_t *loop, jrpc__acct_t *acct, int window_bits)
{
    memset(zs, 0, sizeof(*zs));
    zs->loop = loop;
    zs->acct = acct;
    zs->tr = (uint8_t)(window_bits < 0 ? JRPC__TR_WS : JRPC__TR_HTTP);
    zs->z.zalloc = zs_alloc;
    zs->z.zfree = zs_free;
    zs->z.opaque = zs;
}

static int zs_rc(int zrc)
{
    return zrc == Z_MEM_ERROR ? JRPC_ENOMEM : JRPC_EINVAL;
}

/* After deflateInit2/inflateInit2 returned zrc: the stream is live and holds a reference to its
 * account, or the error. */
static int zs_started(jrpc__zs_t *zs, jrpc__acct_t *acct, int zrc)
{
    if (zrc != Z_OK)
        return zs_rc(zrc);
    if (acct != NULL)
        jrpc__acct_ref(acct);
    zs->live = 1;
    return 0;
}

int jrpc__zs_deflate_init(jrpc__zs_t *zs, jrpc__loop_t *loop, jrpc__acct_t *acct, int level,
                          int window_bits, int mem_level)
{
    zs_prep(zs, loop, acct, window_bits);
    return zs_started(
        zs, acct,
        deflateInit2(&zs->z, level, Z_DEFLATED, window_bits, mem_level, Z_DEFAULT_STRATEGY));
}

int jrpc__zs_inflate_init(jrpc__zs_t *zs, jrpc__loop_t *loop, jrpc__acct_t *acct, int window_bits)
{
    zs_prep(zs, loop, acct, window_bits);
    zs->is_inflate = 1;
    return zs_started(zs, acct, inflateInit2(&zs->z, window_bits));
}

void jrpc__zs_end(jrpc__zs_t *zs)
{
    if (!zs->live)
        return;
    zs->live = 0;
    if (zs->is_inflate)
        inflateEnd(&zs->z);
    else
        deflateEnd(&zs->z);
    if (zs->acct != NULL)
        jrpc__acct_unref(zs->acct);
}

int jrpc__zs_deflate(jrpc__zs_t *zs, const void *in, size_t n, int flush, jrpc_buf_t *out)
{
    zs->z.next_in = (Bytef *)(uintptr_t)in; /* zlib does not write through it */
    zs->z.avail_in = 0;
    const unsigned char *p = in;
    size_t left = n;
    for (;;) {
        /* zlib counts in uInt: feed at most 1 GiB at a time. */
        if (zs->z.avail_in == 0 && left != 0) {
            uInt step = left > (1u << 30) ? (1u << 30) : (uInt)left;
            zs->z.next_in = (Bytef *)(uintptr_t)p;
            zs->z.avail_in = step;
            p += step;
            left -= step;
        }
        size_t room = deflateBound(&zs->z, zs->z.avail_in) + 16;
        if (room > (1u << 30))
            room = 1u << 30;
        if (jrpc_buf_reserve(out, room) != 0)
            return JRPC_ENOMEM;
        zs->z.next_out = (Bytef *)out->ptr + out->len;
        zs->z.avail_out = (uInt)(out->cap - out->len);
        int f = left != 0 ? Z_NO_FLUSH : flush;
        int rc = deflate(&zs->z, f);
        out->len = out->cap - zs->z.avail_out;
        if (rc == Z_STREAM_END)
            return 0;
        if (rc != Z_OK && rc != Z_BUF_ERROR)
            return zs_rc(rc);
        /* Done when all input went in and zlib left room unused (its flush is complete). */
        if (left == 0 && zs->z.avail_in == 0 && zs->z.avail_out != 0 && f != Z_FINISH)
            return 0;
    }
}

int jrpc__zs_inflate(jrpc__zs_t *zs, const void *in, size_t n, size_t *used, jrpc_buf_t *out,
                     size_t max)
{
    const unsigned char *p = in;
    size_t left = n;
    zs->z.avail_in = 0;
    int ret = 0;
    for (;;) {
        if (zs->z.avail_in == 0) {
            if (left == 0)
                break;
            uInt step = left > (1u << 30) ? (1u << 30) : (uInt)left;
            zs->z.next_in = (Bytef *)(uintptr_t)p;
            zs->z.avail_in = step;
            p += step;
            left -= step;
        }
        if (out->len == out->cap && out->len >= max) {
            /* Full at the bound: what remains may be the stream's trailer (no output). One byte
             * of room tells whether more output would follow. */
            unsigned char one;
            zs->z.next_out = &one;
            zs->z.avail_out = 1;
            int rc = inflate(&zs->z, Z_NO_FLUSH);
            if (zs->z.avail_out == 0) {
                ret = JRPC_ERANGE;
                break;
            }
            if (rc == Z_STREAM_END) {
                ret = 1;
                break;
            }
            if (rc != Z_OK && rc != Z_BUF_ERROR) {
                ret = rc == Z_MEM_ERROR ? JRPC_ENOMEM : JRPC_EINVAL;
                break;
            }
            continue;
        }
        if (out->len == out->cap) {
            /* Double, from 16 KiB, never past max. */
            size_t cap = out->cap != 0 ? out->cap * 2 : 16 * 1024;
            if (cap > max || cap < out->cap)
                cap = max;
            char *np = realloc(out->ptr, cap);
            if (np == NULL) {
                ret = JRPC_ENOMEM;
                break;
            }
            out->ptr = np;
            out->cap = cap;
        }
        size_t room = out->cap - out->len;
        zs->z.next_out = (Bytef *)out->ptr + out->len;
        zs->z.avail_out = room > (1u << 30) ? (1u << 30) : (uInt)room;
        uInt before = zs->z.avail_out;
        int rc = inflate(&zs->z, Z_NO_FLUSH);
        out->len += before - zs->z.avail_out;
        if (rc == Z_STREAM_END) {
            ret = 1;
            break;
        }
        if (rc == Z_BUF_ERROR && zs->z.avail_out != 0 && zs->z.avail_in == 0)
            continue; /* needs more input: the next step, or the caller's next call */
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            ret = rc == Z_MEM_ERROR ? JRPC_ENOMEM : JRPC_EINVAL;
            break;
        }
    }
    *used = n - left - zs->z.avail_in;
    return ret;
}
