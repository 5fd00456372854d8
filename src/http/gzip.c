/* SPDX-License-Identifier: MIT */
/* gzip.c — content codings over HTTP: which coding a client accepts (Accept-Encoding with its
 * q-values, RFC 9110 §12.5.3), gzip-encoded answers, and request bodies sent with
 * Content-Encoding: gzip, decoded as they arrive with max_body bounding the decoded bytes, so a
 * small body that inflates to gigabytes costs max_body and a 413, nothing more. zlib's state
 * counts in the connection's account (src/io/zstream.c). */
#include "../io/zstream.h"
#include "../util/log.h"
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Headers --------------------------------------------------------------------------------- */

static int is_blank(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* A q-value ("1", "0.5", "1.000"; RFC 9110 §12.4.2) as thousandths; -1 when malformed. */
static int qvalue(const char *p, size_t n)
{
    if (n == 0 || (p[0] != '0' && p[0] != '1'))
        return -1;
    int q = (p[0] - '0') * 1000;
    if (n == 1)
        return q;
    if (p[1] != '.' || n > 5)
        return -1;
    int scale = 100;
    for (size_t i = 2; i < n; i++, scale /= 10) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        q += (p[i] - '0') * scale;
    }
    return q > 1000 ? -1 : q;
}

/* Calls cb for each element of the list v[0..n): its coding (trimmed) and its q in thousandths
 * (1000 when none is given, -1 when malformed). */
static void each_coding(const char *v, size_t n,
                        void (*cb)(jrpc__http_req_t *, const char *, size_t, int),
                        jrpc__http_req_t *hr)
{
    size_t i = 0;
    while (i < n) {
        size_t end = i;
        while (end < n && v[end] != ',')
            end++;
        size_t a = i, b = end;
        while (a < b && is_blank(v[a]))
            a++;
        size_t tok_end = a;
        while (tok_end < b && v[tok_end] != ';' && !is_blank(v[tok_end]))
            tok_end++;
        int q = 1000;
        /* Parameters: only q counts. */
        size_t k = tok_end;
        while (k < b) {
            while (k < b && (is_blank(v[k]) || v[k] == ';'))
                k++;
            size_t pn = k;
            while (k < b && v[k] != '=' && v[k] != ';' && !is_blank(v[k]))
                k++;
            size_t pn_len = k - pn;
            while (k < b && is_blank(v[k]))
                k++;
            if (k < b && v[k] == '=') {
                k++;
                while (k < b && is_blank(v[k]))
                    k++;
                size_t pv = k;
                while (k < b && v[k] != ';' && !is_blank(v[k]))
                    k++;
                if (pn_len == 1 && v[pn] == 'q')
                    q = qvalue(v + pv, k - pv);
            } else if (pn_len != 0) {
                q = pn_len == 1 && v[pn] == 'q' ? -1 : q;
            }
        }
        if (tok_end > a)
            cb(hr, v + a, tok_end - a, q);
        i = end + 1;
    }
}

static int is_coding(const char *t, size_t n, const char *lit)
{
    return n == strlen(lit) && memcmp(t, lit, n) == 0;
}

static void ae_one(jrpc__http_req_t *hr, const char *t, size_t n, int q)
{
    if (q < 0)
        return; /* a malformed q says nothing we can act on */
    uint16_t v = (uint16_t)(q + 1);
    if (is_coding(t, n, "gzip") || is_coding(t, n, "x-gzip"))
        hr->ae_gzip = v;
    else if (is_coding(t, n, "*"))
        hr->ae_any = v;
    else if (is_coding(t, n, "identity"))
        hr->ae_id = v;
}

size_t jrpc__http_enc_whole(const jrpc__http_req_t *hr)
{
    size_t n = hr->enc_len;
    if (n <= sizeof hr->enc)
        return n;
    n = sizeof hr->enc;
    while (n > 0 && hr->enc[n - 1] != ',')
        n--;
    return n;
}

void jrpc__http_ae_parse(jrpc__http_req_t *hr)
{
    each_coding(hr->enc, jrpc__http_enc_whole(hr), ae_one, hr);
}

static void ce_one(jrpc__http_req_t *hr, const char *t, size_t n, int q)
{
    (void)q;
    if (is_coding(t, n, "identity"))
        return;
    if ((is_coding(t, n, "gzip") || is_coding(t, n, "x-gzip")) && hr->ce == JRPC__CE_NONE)
        hr->ce = JRPC__CE_GZIP;
    else
        hr->ce = JRPC__CE_OTHER; /* another coding, or gzip applied twice */
}

void jrpc__http_ce_parse(jrpc__http_req_t *hr)
{
    if (hr->enc_len > sizeof hr->enc) {
        hr->ce = JRPC__CE_OTHER; /* no coding we decode has a name that long */
        return;
    }
    each_coding(hr->enc, hr->enc_len, ce_one, hr);
}

int jrpc__http_gzip_accepted(const jrpc__http_req_t *hr)
{
    unsigned q = hr->ae_gzip != 0 ? hr->ae_gzip : hr->ae_any;
    if (q <= 1)
        return 0; /* not named (no Accept-Encoding: identity only), or q=0 */
    return hr->ae_id == 0 || hr->ae_id <= q; /* identity asked for, and preferred */
}

/* ---- Answers --------------------------------------------------------------------------------- */

void jrpc__http_gzip_answer(jrpc__http_conn_t *c, jrpc__http_req_t *hr)
{
    const jrpc_config_t *cfg = c->loop->cfg;
    if (!hr->vary_ae || hr->gz_out)
        return;
    if (hr->status == 204 || hr->out.len == 0 || hr->out.len < cfg->gzip_min) {
        hr->vary_ae = 0; /* plain for every client: Accept-Encoding did not matter */
        return;
    }
    if (!hr->gz_ok)
        return; /* Vary stays: a client that accepts gzip gets another representation */
    /* The window need not exceed the answer: a 2 KiB answer gets a 2 KiB window and a smaller
     * hash, so compressing it allocates ~20 KiB instead of zlib's default ~256 KiB. */
    int wbits = 9;
    while (wbits < 15 && ((size_t)1 << wbits) < hr->out.len)
        wbits++;
    int mem_level = wbits - 6 < 8 ? wbits - 6 : 8;
    jrpc__zs_t zs;
    if (jrpc__zs_deflate_init(&zs, c->loop, c->acct, (int)cfg->gzip_level, wbits + 16, mem_level) !=
        0)
        return; /* out of memory: plain */
    jrpc_buf_t gz;
    jrpc_buf_init(&gz);
    int rc = jrpc__zs_deflate(&zs, hr->out.ptr, hr->out.len, Z_FINISH, &gz);
    jrpc__zs_end(&zs);
    if (rc != 0 || gz.len >= hr->out.len) {
        jrpc_buf_free(&gz); /* out of memory, or it does not shrink: plain */
        return;
    }
    jrpc__stats_z(&c->loop->stats, JRPC__TR_HTTP, JRPC__Z_OUT, hr->out.len, gz.len);
    jrpc_buf_free(&hr->out);
    hr->out = gz;
    hr->gz_out = 1;
}

/* ---- Request bodies -------------------------------------------------------------------------- */

void jrpc__http_gunzip_end(jrpc__http_conn_t *c)
{
    if (c->gunzip == NULL)
        return;
    jrpc__zs_end(c->gunzip);
    free(c->gunzip);
    c->gunzip = NULL;
    c->gunzip_end = 0;
}

static int gunzip_refuse(jrpc__http_conn_t *c, unsigned status, int code, const char *msg)
{
    jrpc__http_gunzip_end(c);
    if (status == 413)
        jrpc__stats_limit(&c->loop->stats, JRPC__LIMIT_BODY);
    jrpc__http_refuse(c, status, code, msg);
    return -1;
}

int jrpc__http_gunzip_body(jrpc__http_conn_t *c, jrpc__http_req_t *hr, const char *at, size_t len)
{
    size_t max = c->loop->cfg->max_body;
    if (c->gunzip == NULL) {
        c->gunzip = malloc(sizeof(*c->gunzip));
        if (c->gunzip == NULL || jrpc__zs_inflate_init(c->gunzip, c->loop, c->acct, 15 + 16) != 0) {
            free(c->gunzip);
            c->gunzip = NULL;
            return gunzip_refuse(c, 500, JRPC_CODE_INTERNAL_ERROR, "out of memory");
        }
    }
    jrpc_buf_t b = {.ptr = hr->in, .len = hr->in_len, .cap = hr->in_cap, .err = 0};
    int rc = 0;
    while (len > 0) {
        if (c->gunzip_end) {
            /* RFC 1952 §2.2: a gzip file is a series of members; the next one starts here. */
            inflateReset(&c->gunzip->z);
            c->gunzip_end = 0;
        }
        size_t used = 0;
        rc = jrpc__zs_inflate(c->gunzip, at, len, &used, &b, max);
        at += used;
        len -= used;
        if (rc < 0)
            break;
        if (rc == 1)
            c->gunzip_end = 1;
    }
    hr->in = b.ptr;
    hr->in_len = b.len;
    hr->in_cap = b.cap;
    if (rc == JRPC_ERANGE) {
        char msg[80];
        snprintf(msg, sizeof msg, "request body exceeds %zu bytes once decoded", max);
        return gunzip_refuse(c, 413, JRPC_CODE_LIMIT_EXCEEDED, msg);
    }
    if (rc == JRPC_ENOMEM)
        return gunzip_refuse(c, 500, JRPC_CODE_INTERNAL_ERROR, "out of memory");
    if (rc < 0)
        return gunzip_refuse(c, 400, JRPC_CODE_PARSE_ERROR,
                             "request body is not valid gzip data (Content-Encoding: gzip)");
    return 0;
}

int jrpc__http_gunzip_finish(jrpc__http_conn_t *c, jrpc__http_req_t *hr)
{
    if (!c->gunzip_end)
        return gunzip_refuse(c, 400, JRPC_CODE_PARSE_ERROR,
                             "gzip request body cut short (Content-Encoding: gzip)");
    jrpc__http_gunzip_end(c);
    /* body_seen: the body's bytes as they came, after any chunked framing. */
    jrpc__stats_z(&c->loop->stats, JRPC__TR_HTTP, JRPC__Z_IN, hr->in_len, c->body_seen);
    return 0;
}
