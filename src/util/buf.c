/* SPDX-License-Identifier: MIT */
/* buf.c — the growable output buffer (jrpc_buf_t) with a sticky error, so writers can append a
 * whole response and check once at the end. The JSON-specific appends live in src/json/write.c. */
#include "jrpc.h"

#include <stdlib.h>
#include <string.h>

/* First allocation: a typical single response (envelope, id, a small result) fits; after that the
 * capacity doubles, so appending n bytes costs O(n) copies in all. */
#define BUF_FIRST_CAP 256

JRPC_EXTERN void jrpc_buf_init(jrpc_buf_t *b)
{
    b->ptr = NULL;
    b->len = b->cap = 0;
    b->err = 0;
}

JRPC_EXTERN void jrpc_buf_free(jrpc_buf_t *b)
{
    free(b->ptr);
    jrpc_buf_init(b);
}

JRPC_EXTERN int jrpc_buf_reserve(jrpc_buf_t *b, size_t n)
{
    if (b->err)
        return b->err;
    if (b->cap - b->len >= n)
        return 0;
    if (n > SIZE_MAX / 2 - b->len) {
        b->err = JRPC_ENOMEM;
        return b->err;
    }
    size_t cap = b->cap ? b->cap : BUF_FIRST_CAP;
    while (cap - b->len < n)
        cap *= 2;
    char *p = realloc(b->ptr, cap);
    if (p == NULL) {
        b->err = JRPC_ENOMEM;
        return b->err;
    }
    b->ptr = p;
    b->cap = cap;
    return 0;
}

JRPC_EXTERN int jrpc_buf_append(jrpc_buf_t *b, const void *p, size_t n)
{
    if (jrpc_buf_reserve(b, n) != 0)
        return b->err;
    if (n != 0)
        memcpy(b->ptr + b->len, p, n);
    b->len += n;
    return 0;
}

JRPC_EXTERN int jrpc_buf_appendz(jrpc_buf_t *b, const char *s)
{
    return jrpc_buf_append(b, s, strlen(s));
}
