/* SPDX-License-Identifier: MIT */
/* value.c — typed accessors over already-validated JSON text (the views handlers get for params).
 * Nothing is parsed ahead of time: each call walks the text it needs, skipping values with a cheap
 * structural walk (strings with their escapes, bracket depth). Validity is assumed for meaning,
 * never for memory safety: no function reads outside [v.ptr, v.ptr + v.len), whatever the bytes
 * are. */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Walking --------------------------------------------------------------------------------- */

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && is_ws(*p))
        p++;
    return p;
}

jrpc_json_t jrpc__json_trim(jrpc_json_t v)
{
    if (v.ptr == NULL)
        return v;
    const char *p = v.ptr, *end = v.ptr + v.len;
    p = skip_ws(p, end);
    while (end > p && is_ws(end[-1]))
        end--;
    return (jrpc_json_t){p, (size_t)(end - p)};
}

/* p at an opening quote: returns one past the closing quote (or end if there is none). A quote
 * closes the string when an even number of backslashes precede it; memchr finds the candidates. */
static const char *skip_string(const char *p, const char *end)
{
    const char *start = p++;
    while (p < end) {
        const char *q = memchr(p, '"', (size_t)(end - p));
        if (q == NULL)
            return end;
        size_t bs = 0;
        for (const char *b = q - 1; b > start && *b == '\\'; b--)
            bs++;
        if ((bs & 1) == 0)
            return q + 1;
        p = q + 1;
    }
    return end;
}

/* p at the first byte of a value: returns one past its last byte (at most end). A scalar ends at
 * whitespace or a structural character; a container at its matching bracket. */
static const char *skip_value(const char *p, const char *end)
{
    if (p >= end)
        return p;
    char c = *p;
    if (c == '"')
        return skip_string(p, end);
    if (c == '[' || c == '{') {
        size_t depth = 0;
        while (p < end) {
            c = *p;
            if (c == '"') {
                p = skip_string(p, end);
                continue;
            }
            if (c == '[' || c == '{') {
                depth++;
            } else if (c == ']' || c == '}') {
                if (--depth == 0)
                    return p + 1;
            }
            p++;
        }
        return end;
    }
    while (p < end && !is_ws(*p) && *p != ',' && *p != ']' && *p != '}' && *p != ':')
        p++;
    return p;
}

/* ---- Types and containers -------------------------------------------------------------------- */

JRPC_EXTERN jrpc_json_type_t jrpc_json_type(jrpc_json_t v)
{
    v = jrpc__json_trim(v);
    if (v.ptr == NULL || v.len == 0)
        return JRPC_JSON_NONE;
    switch (v.ptr[0]) {
    case 'n':
        return JRPC_JSON_NULL;
    case 'f':
        return JRPC_JSON_FALSE;
    case 't':
        return JRPC_JSON_TRUE;
    case '"':
        return JRPC_JSON_STRING;
    case '[':
        return JRPC_JSON_ARRAY;
    case '{':
        return JRPC_JSON_OBJECT;
    default:
        if (v.ptr[0] == '-' || (v.ptr[0] >= '0' && v.ptr[0] <= '9'))
            return JRPC_JSON_NUMBER;
        return JRPC_JSON_NONE;
    }
}

JRPC_EXTERN int jrpc_json_iter_init(jrpc_json_iter_t *it, jrpc_json_t v)
{
    v = jrpc__json_trim(v);
    if (v.ptr == NULL || v.len == 0 || (v.ptr[0] != '[' && v.ptr[0] != '{')) {
        it->pos = it->end = NULL;
        it->object = 0;
        return JRPC_ETYPE;
    }
    it->pos = v.ptr + 1;
    it->end = v.ptr + v.len;
    it->object = v.ptr[0] == '{';
    return 0;
}

JRPC_EXTERN int jrpc_json_iter_next(jrpc_json_iter_t *it, jrpc_json_t *key, jrpc_json_t *val)
{
    const char *p = it->pos, *end = it->end;
    if (p == NULL)
        return 0;
    p = skip_ws(p, end);
    if (p < end && *p == ',')
        p = skip_ws(p + 1, end);
    if (p >= end || *p == ']' || *p == '}')
        goto done;
    jrpc_json_t k = {NULL, 0};
    if (it->object) {
        if (*p != '"')
            goto done;
        const char *q = skip_string(p, end);
        k = (jrpc_json_t){p, (size_t)(q - p)};
        p = skip_ws(q, end);
        if (p >= end || *p != ':')
            goto done;
        p = skip_ws(p + 1, end);
    }
    const char *q = skip_value(p, end);
    if (q == p) /* not a value at all: stop rather than loop forever on bad text */
        goto done;
    if (key != NULL)
        *key = k;
    if (val != NULL)
        *val = (jrpc_json_t){p, (size_t)(q - p)};
    it->pos = q;
    return 1;
done:
    it->pos = end;
    return 0;
}

JRPC_EXTERN size_t jrpc_json_count(jrpc_json_t v)
{
    jrpc_json_iter_t it;
    if (jrpc_json_iter_init(&it, v) != 0)
        return 0;
    size_t n = 0;
    while (jrpc_json_iter_next(&it, NULL, NULL))
        n++;
    return n;
}

JRPC_EXTERN int jrpc_json_at(jrpc_json_t v, size_t i, jrpc_json_t *out)
{
    jrpc_json_iter_t it;
    if (jrpc_json_iter_init(&it, v) != 0 || it.object)
        return JRPC_ETYPE;
    jrpc_json_t e;
    for (size_t k = 0; jrpc_json_iter_next(&it, NULL, &e); k++) {
        if (k == i) {
            *out = e;
            return 0;
        }
    }
    return JRPC_ENOENT;
}

/* ---- Strings --------------------------------------------------------------------------------- */

/* Length of the escape starting at p[0] == '\\' within [p, end): 2, 6, or 12 for a surrogate pair
 * written as two \u escapes. Short (truncated) escapes report what is left, so callers stay in
 * bounds on bad text. */
static size_t escape_len(const char *p, const char *end)
{
    size_t left = (size_t)(end - p);
    if (left < 2)
        return left;
    if (p[1] != 'u')
        return 2;
    if (left < 6)
        return left;
    /* A high surrogate D800-DBFF: 'd' or 'D', then 8-b. */
    char c = p[3];
    int high = (p[2] == 'd' || p[2] == 'D') &&
               (c == '8' || c == '9' || c == 'a' || c == 'b' || c == 'A' || c == 'B');
    if (high && left >= 12 && p[6] == '\\' && p[7] == 'u')
        return 12;
    return 6;
}

/* Walks a string body [p, end) in segments: a run of plain bytes or one escape, unescaped into
 * tmp (at most 4 bytes). Returns the segment's unescaped bytes and length via *seg / *seg_len and
 * the next position. */
static const char *next_segment(const char *p, const char *end, char tmp[12], const char **seg,
                                size_t *seg_len)
{
    if (*p != '\\') {
        const char *q = memchr(p, '\\', (size_t)(end - p));
        if (q == NULL)
            q = end;
        *seg = p;
        *seg_len = (size_t)(q - p);
        return q;
    }
    size_t n = escape_len(p, end);
    if (n < 2) { /* a dangling backslash on bad text: take it as it is */
        *seg = p;
        *seg_len = n;
        return p + n;
    }
    *seg = tmp;
    *seg_len = jrpc__json_unescape(p, n, tmp);
    return p + n;
}

/* The body of string v (between the quotes), or ptr NULL when v is not a string. */
static jrpc_json_t string_body(jrpc_json_t v)
{
    v = jrpc__json_trim(v);
    if (v.ptr == NULL || v.len < 2 || v.ptr[0] != '"' || v.ptr[v.len - 1] != '"')
        return (jrpc_json_t){NULL, 0};
    return (jrpc_json_t){v.ptr + 1, v.len - 2};
}

/* 1 when the string body [p, end) unescapes to exactly s[0..n). */
static int body_eq(const char *p, const char *end, const char *s, size_t n)
{
    if (memchr(p, '\\', (size_t)(end - p)) == NULL)
        return (size_t)(end - p) == n && memcmp(p, s, n) == 0;
    char tmp[12];
    while (p < end) {
        const char *seg;
        size_t len;
        p = next_segment(p, end, tmp, &seg, &len);
        if (len > n || memcmp(seg, s, len) != 0)
            return 0;
        s += len;
        n -= len;
    }
    return n == 0;
}

JRPC_EXTERN int jrpc_json_string_eq(jrpc_json_t v, const char *s, size_t n)
{
    jrpc_json_t b = string_body(v);
    if (b.ptr == NULL)
        return 0;
    return body_eq(b.ptr, b.ptr + b.len, s, n);
}

JRPC_EXTERN int jrpc_json_string(jrpc_json_t v, char *buf, size_t cap, size_t *len)
{
    jrpc_json_t b = string_body(v);
    if (b.ptr == NULL)
        return JRPC_ETYPE;
    if (cap > b.len) { /* unescaping never grows the text: it fits */
        size_t n = jrpc__json_unescape(b.ptr, b.len, buf);
        buf[n] = '\0';
        *len = n;
        return 0;
    }
    size_t need = b.len;
    if (memchr(b.ptr, '\\', b.len) != NULL) {
        char tmp[12];
        const char *p = b.ptr, *end = b.ptr + b.len;
        need = 0;
        while (p < end) {
            const char *seg;
            size_t seg_len;
            p = next_segment(p, end, tmp, &seg, &seg_len);
            need += seg_len;
        }
    }
    *len = need;
    if (need >= cap)
        return JRPC_ERANGE;
    size_t n = jrpc__json_unescape(b.ptr, b.len, buf);
    buf[n] = '\0';
    return 0;
}

JRPC_EXTERN int jrpc_json_get(jrpc_json_t v, const char *key, jrpc_json_t *out)
{
    jrpc_json_iter_t it;
    if (jrpc_json_iter_init(&it, v) != 0 || !it.object)
        return JRPC_ETYPE;
    size_t n = strlen(key);
    int found = 0;
    jrpc_json_t k, e;
    while (jrpc_json_iter_next(&it, &k, &e)) {
        if (k.len >= 2 && body_eq(k.ptr + 1, k.ptr + k.len - 1, key, n)) {
            *out = e; /* keep going: the last duplicate wins */
            found = 1;
        }
    }
    return found ? 0 : JRPC_ENOENT;
}

/* ---- Scalars --------------------------------------------------------------------------------- */

JRPC_EXTERN int jrpc_json_bool(jrpc_json_t v, int *out)
{
    v = jrpc__json_trim(v);
    if (v.ptr != NULL && v.len == 4 && memcmp(v.ptr, "true", 4) == 0) {
        *out = 1;
        return 0;
    }
    if (v.ptr != NULL && v.len == 5 && memcmp(v.ptr, "false", 5) == 0) {
        *out = 0;
        return 0;
    }
    return JRPC_ETYPE;
}

/* Parses an integer-form number: sign and magnitude. JRPC_ETYPE unless v is '-'? digits+ exactly;
 * JRPC_ERANGE when the magnitude exceeds UINT64_MAX. */
static int parse_integer(jrpc_json_t v, int *neg, uint64_t *mag)
{
    v = jrpc__json_trim(v);
    if (v.ptr == NULL || v.len == 0)
        return JRPC_ETYPE;
    const char *p = v.ptr, *end = v.ptr + v.len;
    *neg = *p == '-';
    if (*neg)
        p++;
    if (p == end)
        return JRPC_ETYPE;
    for (const char *q = p; q < end; q++)
        if (*q < '0' || *q > '9')
            return JRPC_ETYPE; /* fraction, exponent, or not a number at all */
    uint64_t m = 0;
    for (; p < end; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (m > (UINT64_MAX - d) / 10)
            return JRPC_ERANGE;
        m = m * 10 + d;
    }
    *mag = m;
    return 0;
}

JRPC_EXTERN int jrpc_json_int64(jrpc_json_t v, int64_t *out)
{
    int neg;
    uint64_t m;
    int rc = parse_integer(v, &neg, &m);
    if (rc != 0)
        return rc;
    if (neg) {
        if (m > (uint64_t)INT64_MAX + 1)
            return JRPC_ERANGE;
        *out = m == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)m;
    } else {
        if (m > (uint64_t)INT64_MAX)
            return JRPC_ERANGE;
        *out = (int64_t)m;
    }
    return 0;
}

JRPC_EXTERN int jrpc_json_uint64(jrpc_json_t v, uint64_t *out)
{
    int neg;
    uint64_t m;
    int rc = parse_integer(v, &neg, &m);
    if (rc != 0)
        return rc;
    if (neg && m != 0) /* "-0" is zero */
        return JRPC_ERANGE;
    *out = m;
    return 0;
}

/* Significant digits kept for strtod. A decimal exactly halfway between two doubles has at most 767
 * significant digits, so keeping 780 and replacing the rest by one non-zero "sticky" digit when any
 * of them is non-zero rounds exactly like the full text would — without allocating for numbers of
 * any length. */
#define NUM_DIGITS 780
/* Decimal exponents past this overflow or underflow every double whatever the digits (the
 * digits are at most NUM_DIGITS + 1 long), so larger ones are clamped to keep the arithmetic safe.
 */
#define NUM_EXP_CLAMP 100000

JRPC_EXTERN int jrpc_json_double(jrpc_json_t v, double *out)
{
    v = jrpc__json_trim(v);
    if (jrpc_json_type(v) != JRPC_JSON_NUMBER)
        return JRPC_ETYPE;
    const char *p = v.ptr, *end = v.ptr + v.len;
    /* Rewritten as [-]DIGITSe<exp>: no decimal point, so strtod's locale cannot matter. */
    char text[1 + NUM_DIGITS + 1 + 1 + 24];
    size_t n = 0, kept = 0;
    long exp10 = 0; /* value = DIGITS x 10^(exp10 + written exponent) */
    int sticky = 0, neg = *p == '-';
    if (neg)
        text[n++] = *p++;
    /* Integer part: leading zeros carry no value. */
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
        if (kept == 0 && *p == '0')
            continue;
        if (kept < NUM_DIGITS) {
            text[n++] = *p;
            kept++;
        } else {
            exp10++;
            sticky |= *p != '0';
        }
    }
    if (p < end && *p == '.') {
        for (p++; p < end && *p >= '0' && *p <= '9'; p++) {
            if (kept == 0 && *p == '0') {
                exp10--;
                continue;
            }
            if (kept < NUM_DIGITS) {
                text[n++] = *p;
                kept++;
                exp10--;
            } else {
                sticky |= *p != '0';
            }
        }
    }
    long e = 0;
    if (p < end && (*p == 'e' || *p == 'E')) {
        int eneg = 0;
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            eneg = *p++ == '-';
        for (; p < end && *p >= '0' && *p <= '9'; p++)
            if (e < NUM_EXP_CLAMP)
                e = e * 10 + (*p - '0');
        if (eneg)
            e = -e;
    }
    if (p != end)
        return JRPC_ETYPE;
    if (kept == 0) { /* zero, with its sign */
        *out = neg ? -0.0 : 0.0;
        return 0;
    }
    if (sticky)
        text[n++] = '1', exp10--;
    e += exp10;
    if (e > NUM_EXP_CLAMP)
        e = NUM_EXP_CLAMP;
    if (e < -NUM_EXP_CLAMP)
        e = -NUM_EXP_CLAMP;
    snprintf(text + n, sizeof text - n, "e%ld", e);
    double d = strtod(text, NULL);
    if (isinf(d))
        return JRPC_ERANGE;
    *out = d;
    return 0;
}
