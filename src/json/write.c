/* SPDX-License-Identifier: MIT */
/* write.c — the JSON writer's appends (strings, integers, doubles) and the unescaper the accessors
 * and the request engine share. The writer escapes only what it builds itself; raw result bytes
 * are copied by the caller. Whatever bytes it is given, what it writes is valid JSON. */
#include "../util/digits.h"
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Strings --------------------------------------------------------------------------------- */

enum { C_PLAIN = 0, C_ESCAPE, C_HIGH };

/* Byte classes: ASCII that is copied as is, ASCII that needs an escape, and bytes >= 0x80 that
 * start (or wrongly continue) a multi-byte UTF-8 sequence. */
static const unsigned char byte_class[256] = {
    [0x00 ... 0x1f] = C_ESCAPE,
    ['"'] = C_ESCAPE,
    ['\\'] = C_ESCAPE,
    [0x80 ... 0xff] = C_HIGH,
};

/* The letter of the two-character escape for the bytes that have one (RFC 8259 §7); the other
 * C_ESCAPE bytes, all controls, are written \u00XX. */
static const char short_escape[256] = {
    ['"'] = '"',  ['\\'] = '\\', ['\b'] = 'b', ['\f'] = 'f',
    ['\n'] = 'n', ['\r'] = 'r',  ['\t'] = 't',
};

static const char hex_digits[] = "0123456789abcdef";

/* Checks the UTF-8 sequence at p (p[0] >= 0x80) against RFC 3629 (no overlong forms, no
 * surrogates, nothing past U+10FFFF). Returns its length when valid, else 0 with *bad set to the
 * length of its maximal ill-formed subpart (Unicode §3.9: one U+FFFD per maximal subpart). */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end, size_t *bad)
{
    unsigned c = p[0];
    size_t need;
    unsigned lo = 0x80, hi = 0xbf; /* range of the second byte; the others are 80-BF */
    if (c >= 0xc2 && c <= 0xdf) {
        need = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        if (c == 0xe0)
            lo = 0xa0; /* overlong below U+0800 */
        else if (c == 0xed)
            hi = 0x9f; /* surrogates U+D800-DFFF */
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        if (c == 0xf0)
            lo = 0x90; /* overlong below U+10000 */
        else if (c == 0xf4)
            hi = 0x8f; /* past U+10FFFF */
    } else {
        *bad = 1; /* a stray continuation byte, C0/C1 (always overlong) or F5-FF */
        return 0;
    }
    size_t i = 1;
    for (; i < need && p + i < end; i++) {
        unsigned b = p[i];
        if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xbf))
            break;
    }
    if (i == need)
        return need;
    *bad = i;
    return 0;
}

JRPC_EXTERN int jrpc_buf_json_string(jrpc_buf_t *b, const char *s, size_t n)
{
    /* Most strings need no escapes: reserve for that once, grow only when escapes add bytes. */
    if (jrpc_buf_reserve(b, n + 2) != 0)
        return b->err;
    b->ptr[b->len++] = '"';
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        /* A run of bytes copied unchanged: plain ASCII and valid UTF-8 sequences. */
        const unsigned char *run = p;
        size_t bad = 0;
        while (p < end) {
            unsigned char cls = byte_class[*p];
            if (cls == C_PLAIN) {
                p++;
            } else if (cls == C_HIGH) {
                size_t k = utf8_seq(p, end, &bad);
                if (k == 0)
                    break;
                p += k;
            } else {
                break;
            }
        }
        if (p > run)
            jrpc_buf_append(b, run, (size_t)(p - run));
        if (p == end)
            break;
        if (bad != 0) {
            jrpc_buf_append(b, "\xef\xbf\xbd", 3);
            p += bad;
            continue;
        }
        char esc[6] = {'\\', short_escape[*p], '0', '0', 0, 0};
        size_t esc_len = 2;
        if (esc[1] == 0) {
            esc[1] = 'u';
            esc[4] = hex_digits[*p >> 4];
            esc[5] = hex_digits[*p & 0xf];
            esc_len = 6;
        }
        jrpc_buf_append(b, esc, esc_len);
        p++;
    }
    return jrpc_buf_append(b, "\"", 1);
}

/* ---- Numbers --------------------------------------------------------------------------------- */

JRPC_EXTERN int jrpc_buf_json_uint64(jrpc_buf_t *b, uint64_t v)
{
    char buf[24];
    char *p = jrpc__u64_digits(v, buf + sizeof buf);
    return jrpc_buf_append(b, p, (size_t)(buf + sizeof buf - p));
}

JRPC_EXTERN int jrpc_buf_json_int64(jrpc_buf_t *b, int64_t v)
{
    char buf[24];
    const char *p = jrpc__i64_digits(v, buf + sizeof buf);
    return jrpc_buf_append(b, p, (size_t)(buf + sizeof buf - p));
}

JRPC_EXTERN int jrpc_buf_json_double(jrpc_buf_t *b, double v)
{
    if (b->err)
        return b->err;
    if (!isfinite(v))
        return JRPC_EINVAL;
    /* 17 significant digits always read back exactly; fewer usually do and read better
     * (0.1, not 0.10000000000000001). */
    char tmp[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    /* %g writes the locale's decimal point; JSON wants '.'. Every byte that is not a digit, sign or
     * exponent mark belongs to that decimal point (which may be several bytes long). */
    char out[40];
    size_t n = 0;
    for (const char *p = tmp; *p != '\0'; p++) {
        char c = *p;
        if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == 'e' || c == 'E')
            out[n++] = c;
        else if (n == 0 || out[n - 1] != '.')
            out[n++] = '.';
    }
    return jrpc_buf_append(b, out, n);
}

/* ---- Unescaping ------------------------------------------------------------------------------ */

static int hex4(const char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static size_t utf8_put(char *out, unsigned cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* The input is validated text, but this never reads past p + n whatever it gets, and what cannot
 * be decoded (a lone surrogate, a bad \u) becomes U+FFFD — still never longer than its escape. */
size_t jrpc__json_unescape(const char *p, size_t n, char *out)
{
    const char *end = p + n;
    char *o = out;
    while (p < end) {
        const char *bs = memchr(p, '\\', (size_t)(end - p));
        if (bs == NULL)
            bs = end;
        if (bs > p) {
            memmove(o, p, (size_t)(bs - p)); /* out may be p itself: unescaping in place */
            o += bs - p;
            p = bs;
        }
        if (p == end)
            break;
        if (end - p < 2) { /* dangling backslash: keep it */
            *o++ = *p++;
            break;
        }
        char c = p[1];
        p += 2;
        switch (c) {
        case 'b':
            *o++ = '\b';
            continue;
        case 'f':
            *o++ = '\f';
            continue;
        case 'n':
            *o++ = '\n';
            continue;
        case 'r':
            *o++ = '\r';
            continue;
        case 't':
            *o++ = '\t';
            continue;
        case 'u':
            break;
        default: /* '"', '\\', '/' */
            *o++ = c;
            continue;
        }
        if (end - p < 4) { /* truncated \u: too short even for U+FFFD */
            *o++ = '?';
            p = end;
            break;
        }
        int cp = hex4(p);
        if (cp < 0) {
            o += utf8_put(o, 0xfffd);
            p += 4;
            continue;
        }
        p += 4;
        if (cp >= 0xd800 && cp <= 0xdbff && end - p >= 6 && p[0] == '\\' && p[1] == 'u') {
            int lo = hex4(p + 2);
            if (lo >= 0xdc00 && lo <= 0xdfff) {
                p += 6;
                o += utf8_put(o,
                              0x10000 + (((unsigned)cp - 0xd800) << 10) + ((unsigned)lo - 0xdc00));
                continue;
            }
        }
        if (cp >= 0xd800 && cp <= 0xdfff)
            cp = 0xfffd;
        o += utf8_put(o, (unsigned)cp);
    }
    return (size_t)(o - out);
}
