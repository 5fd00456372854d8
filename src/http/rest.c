/* SPDX-License-Identifier: MIT */
/* rest.c — REST routes over the same engine (seed 002's "batches over REST"):
 *   POST <rest_path>/<method>        body = params (array, object or empty) → bare result
 *   GET  <rest_path>/<method>?k=v    named params from the query string, values as strings
 *   POST <rest_path>/<method>/batch  body = JSON array of params → array of results in order
 * The method name is percent-decoded from the path; errors come back as {"error":{…}} with the
 * HTTP status the engine maps from the error code (docs/rest.md). */
#include "internal.h"

#include <stdio.h>
#include <string.h>

static int hexdigit(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = (char)(ch | 0x20);
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/* Percent-decodes p[0..n) in place ('+' becomes a space when `plus`: query strings). Returns the
 * decoded length, or -1 for a malformed escape. Decoding only shortens, so each byte is read
 * before it can be overwritten. */
static long pct_decode(char *p, size_t n, int plus)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (ch == '%') {
            if (n - i < 3)
                return -1;
            int hi = hexdigit(p[i + 1]), lo = hexdigit(p[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            p[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else if (ch == '+' && plus) {
            p[o++] = ' ';
        } else {
            p[o++] = ch;
        }
    }
    return (long)o;
}

/* Whether every '%' of p[0..n) starts an escape of two hex digits (RFC 3986 §2.1). */
static int pct_valid(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '%')
            continue;
        if (n - i < 3 || hexdigit(p[i + 1]) < 0 || hexdigit(p[i + 2]) < 0)
            return 0;
        i += 2;
    }
    return 1;
}

/* The query string q[0..n) (NULL: none) as a JSON object of strings ({"k":"v",…}; a key without
 * '=' gets ""). Keys and values are decoded in place. A pair with a malformed escape: JRPC_EINVAL
 * and the pair as sent in (*bad, *bad_len), before anything of it was decoded. */
static int query_to_json(char *q, size_t n, jrpc_buf_t *out, const char **bad, size_t *bad_len)
{
    if (q == NULL)
        return jrpc_buf_append(out, "{}", 2);
    size_t members = 0;
    jrpc_buf_append(out, "{", 1);
    char *end = q + n;
    while (q < end) {
        char *amp = memchr(q, '&', (size_t)(end - q));
        char *pair_end = amp ? amp : end;
        if (pair_end > q) {
            char *eq = memchr(q, '=', (size_t)(pair_end - q));
            char *key_end = eq ? eq : pair_end;
            if (!pct_valid(q, (size_t)(pair_end - q))) {
                *bad = q;
                *bad_len = (size_t)(key_end - q);
                return JRPC_EINVAL;
            }
            long kl = pct_decode(q, (size_t)(key_end - q), 1);
            if (kl < 0)
                return JRPC_EINVAL;
            if (members++ > 0)
                jrpc_buf_append(out, ",", 1);
            jrpc_buf_json_string(out, q, (size_t)kl);
            jrpc_buf_append(out, ":", 1);
            long vl = 0;
            if (eq != NULL && (vl = pct_decode(eq + 1, (size_t)(pair_end - eq - 1), 1)) < 0)
                return JRPC_EINVAL;
            jrpc_buf_json_string(out, eq != NULL ? eq + 1 : q, (size_t)vl);
        }
        q = amp ? amp + 1 : end;
    }
    jrpc_buf_append(out, "}", 1);
    return out->err;
}

int jrpc__http_rest_route(jrpc__http_conn_t *c, jrpc__http_req_t *hr, const char *path,
                          size_t path_len, const char *query, size_t query_len)
{
    const char *prefix = c->loop->cfg->rest_path;
    size_t plen = prefix ? strlen(prefix) : 0;
    if (plen == 0 || path_len <= plen + 1 || memcmp(path, prefix, plen) != 0 || path[plen] != '/')
        return 0;
    /* The name and the query are decoded where they lie, in c->url: its bytes are this request's
     * until the request is complete and handed to the engine (which copies the name). */
    char *m = c->url + (path + plen + 1 - c->url);
    size_t mlen = path_len - plen - 1;
    int batch = 0;
    if (mlen > 6 && memcmp(m + mlen - 6, "/batch", 6) == 0) {
        batch = 1;
        mlen -= 6;
    }
    hr->rest = 1;
    hr->rest_batch = (uint8_t)batch;
    long n = pct_decode(m, mlen, 0);
    if (n <= 0) {
        hr->kind = JRPC__HR_LOCAL;
        hr->status = 400;
        return 1;
    }
    hr->rest_method = m;
    hr->rest_method_len = (size_t)n;
    if (hr->method == HTTP_POST) {
        hr->kind = JRPC__HR_REST;
        return 1;
    }
    if (hr->method == HTTP_GET && !batch) {
        /* The params come from the query string; the body (if any) is not read. */
        jrpc_buf_t b;
        jrpc_buf_init(&b);
        char *q = query != NULL ? c->url + (query - c->url) : NULL;
        const char *bad = NULL;
        size_t bad_len = 0;
        if (query_to_json(q, query_len, &b, &bad, &bad_len) != 0) {
            jrpc_buf_free(&b);
            hr->kind = JRPC__HR_LOCAL;
            if (bad == NULL) {
                hr->status = 500;
                jrpc__http_answer_error(hr, 500, JRPC_CODE_INTERNAL_ERROR, "out of memory");
            } else {
                /* The params are at fault, not the method: say which one. */
                char msg[160];
                snprintf(msg, sizeof msg,
                         "malformed percent-escape in the query, parameter \"%.*s\" (write %% "
                         "and two hex digits)",
                         (int)(bad_len < 64 ? bad_len : 64), bad);
                jrpc__http_answer_error(hr, 400, JRPC_CODE_INVALID_PARAMS, msg);
            }
            hr->state = JRPC__HR_PARSING; /* sent once the request is complete (answer_local) */
            return 1;
        }
        hr->kind = JRPC__HR_REST;
        hr->rest_get = 1;
        hr->in = b.ptr;
        hr->in_len = b.len;
        hr->in_cap = b.cap;
        return 1;
    }
    hr->kind = JRPC__HR_LOCAL;
    hr->status = hr->method == HTTP_OPTIONS ? 204 : 405;
    return 1;
}
