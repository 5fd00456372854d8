/* SPDX-License-Identifier: MIT */
/* scan.c — the envelope scanner: validates a request body as strict RFC 8259 JSON (numbers,
 * escapes, UTF-8, nesting depth) in one pass and, in that same pass, records where each request
 * item and its "jsonrpc", "method", "params" and "id" members are. Nothing is converted or copied:
 * ids and params are later echoed or forwarded as the exact bytes the client sent.
 *
 * Written here rather than taken from a library because no JSON library packaged in Debian is
 * strict, keeps number text byte-exact and is fast at once (DESIGN.md §1 has the measurements).
 * The loop is a flat state machine with an explicit container stack (no recursion, so depth is
 * bounded only by max_depth), and string bodies are skipped eight bytes at a time. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* Character classes for string bodies. */
enum {
    C_PLAIN = 0, /* copied as is */
    C_QUOTE,     /* ends the string */
    C_ESC,       /* backslash */
    C_CTRL,      /* U+0000..U+001F: must be escaped */
    C_U2,        /* C2..DF: lead of a 2-byte sequence */
    C_U3,        /* E0..EF: lead of a 3-byte sequence */
    C_U4,        /* F0..F4: lead of a 4-byte sequence */
    C_BAD        /* 80..C1, F5..FF: never valid where a character starts */
};

/* Rows of 8 or 16 bytes, so a byte's class is found by its value: kept out of clang-format. */
/* clang-format off */
static const unsigned char str_class[256] = {
    /* 00-1F */
    C_CTRL, C_CTRL, C_CTRL, C_CTRL, C_CTRL, C_CTRL, C_CTRL, C_CTRL,
    C_CTRL, C_CTRL, C_CTRL, C_CTRL, C_CTRL, C_CTRL, C_CTRL, C_CTRL,
    C_CTRL, C_CTRL, C_CTRL, C_CTRL, C_CTRL, C_CTRL, C_CTRL, C_CTRL,
    C_CTRL, C_CTRL, C_CTRL, C_CTRL, C_CTRL, C_CTRL, C_CTRL, C_CTRL,
    /* 20-2F */
    0, 0, C_QUOTE, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 30-5F */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, C_ESC, 0, 0, 0,
    /* 60-7F */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 80-BF: continuation bytes */
    C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD,
    C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD,
    C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD,
    C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD,
    C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD,
    C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD,
    C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD,
    C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD,
    /* C0-DF: C0, C1 would be overlong */
    C_BAD, C_BAD, C_U2, C_U2, C_U2, C_U2, C_U2, C_U2,
    C_U2, C_U2, C_U2, C_U2, C_U2, C_U2, C_U2, C_U2,
    C_U2, C_U2, C_U2, C_U2, C_U2, C_U2, C_U2, C_U2,
    C_U2, C_U2, C_U2, C_U2, C_U2, C_U2, C_U2, C_U2,
    /* E0-EF */
    C_U3, C_U3, C_U3, C_U3, C_U3, C_U3, C_U3, C_U3,
    C_U3, C_U3, C_U3, C_U3, C_U3, C_U3, C_U3, C_U3,
    /* F0-FF: F5.. would pass U+10FFFF */
    C_U4, C_U4, C_U4, C_U4, C_U4, C_BAD, C_BAD, C_BAD,
    C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD,
};
/* clang-format on */

/* 1 for the four JSON whitespace bytes. */
static const unsigned char is_ws[256] = {
    [' '] = 1,
    ['\t'] = 1,
    ['\n'] = 1,
    ['\r'] = 1,
};

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

#ifdef __SSE2__
#include <emmintrin.h>
#else
#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull
#endif

/* Skips the plain bytes of a string body (anything but '"', '\\', controls and non-ASCII) from
 * p, sixteen or eight at a time, and returns the first byte that needs a look (or a pointer
 * within 16 bytes of end, where the byte-wise loop takes over). */
static inline const unsigned char *skip_plain(const unsigned char *p, const unsigned char *end)
{
#ifdef __SSE2__
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i bslash = _mm_set1_epi8('\\');
    const __m128i space = _mm_set1_epi8(0x20);
    while (end - p >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
        /* Signed compare: bytes >= 0x80 are negative, so x < 0x20 also flags them. */
        __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, bslash)),
                                 _mm_cmplt_epi8(x, space));
        unsigned mask = (unsigned)_mm_movemask_epi8(m);
        if (mask != 0)
            return p + __builtin_ctz(mask);
        p += 16;
    }
#else
    while (end - p >= 8) {
        uint64_t x;
        memcpy(&x, p, 8);
        uint64_t q = x ^ (ONES * '"');
        uint64_t b = x ^ (ONES * '\\');
        /* (x - ONES*n) & ~x & HIGHS flags bytes below n (n <= 0x80); the lowest flag is exact. */
        uint64_t m = (((q - ONES) & ~q) | ((b - ONES) & ~b) | ((x - ONES * 0x20) & ~x) | x) & HIGHS;
        if (m != 0)
            return p + (__builtin_ctzll(m) >> 3);
        p += 8;
    }
#endif
    return p;
}

typedef struct scan {
    const unsigned char *p;     /* next byte */
    const unsigned char *end;   /* one past the last byte */
    const unsigned char *start; /* first byte: error offsets count from here */
    const char *msg;            /* error, when set */
    int escaped;                /* the last string scanned held a backslash escape */
} scan_t;

#define FAIL(s, at, m)                                                                             \
    do {                                                                                           \
        (s)->p = (at);                                                                             \
        (s)->msg = (m);                                                                            \
        return -1;                                                                                 \
    } while (0)

/* Validates a \uXXXX escape at p (p points at 'u'); on a high surrogate also its low partner.
 * Returns the bytes consumed after the backslash, or -1. */
static inline int scan_unicode_escape(scan_t *s, const unsigned char *p)
{
    const unsigned char *end = s->end;
    /* The first non-hex digit is the error; running out of input first is truncation. */
    for (int i = 1; i <= 4; i++) {
        if (p + i >= end)
            FAIL(s, end, "unexpected end of input");
        if (hexval(p[i]) < 0)
            FAIL(s, p + i, "invalid \\u escape");
    }
    int a = hexval(p[1]), b = hexval(p[2]), c = hexval(p[3]), d = hexval(p[4]);
    unsigned cp = (unsigned)(a << 12 | b << 8 | c << 4 | d);
    if (cp >= 0xDC00 && cp <= 0xDFFF)
        FAIL(s, p - 1, "lone surrogate");
    if (cp < 0xD800 || cp > 0xDBFF)
        return 5;
    /* A high surrogate must be followed by an escaped low surrogate. Input that stops where the
     * partner could still have come is reported as truncated, not as a lone surrogate. */
    if (end - p < 11) {
        const unsigned char *q = p + 5;
        for (long i = 0; q + i < end; i++) {
            if ((i == 0 && q[i] != '\\') || (i == 1 && q[i] != 'u') || (i >= 2 && hexval(q[i]) < 0))
                FAIL(s, p - 1, "lone surrogate");
        }
        FAIL(s, end, "unexpected end of input");
    }
    if (p[5] != '\\' || p[6] != 'u')
        FAIL(s, p - 1, "lone surrogate");
    for (int i = 7; i <= 10; i++)
        if (hexval(p[i]) < 0)
            FAIL(s, p + i, "invalid \\u escape");
    a = hexval(p[7]), b = hexval(p[8]), c = hexval(p[9]), d = hexval(p[10]);
    cp = (unsigned)(a << 12 | b << 8 | c << 4 | d);
    if (cp < 0xDC00 || cp > 0xDFFF)
        FAIL(s, p - 1, "lone surrogate");
    return 11;
}

/* Scans a string whose opening quote is at s->p; leaves s->p after the closing quote. */
static inline __attribute__((always_inline)) int scan_string(scan_t *s)
{
    const unsigned char *p = s->p + 1;
    const unsigned char *end = s->end;
    int escaped = 0;
    for (;;) {
        p = skip_plain(p, end);
        if (p >= end)
            FAIL(s, end, "unexpected end of input");
        unsigned char ch = *p;
        switch (str_class[ch]) {
        case C_PLAIN:
            p++;
            continue;
        case C_QUOTE:
            s->p = p + 1;
            s->escaped = escaped;
            return 0;
        case C_ESC: {
            escaped = 1;
            if (end - p < 2)
                FAIL(s, end, "unexpected end of input");
            switch (p[1]) {
            case '"':
            case '\\':
            case '/':
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't':
                p += 2;
                continue;
            case 'u': {
                int used = scan_unicode_escape(s, p + 1);
                if (used < 0)
                    return -1;
                p += 1 + used;
                continue;
            }
            default:
                FAIL(s, p, "invalid escape");
            }
        }
        case C_CTRL:
            FAIL(s, p, "control character in string");
        case C_U2:
            if (end - p < 2)
                FAIL(s, end, "unexpected end of input");
            if ((p[1] & 0xC0) != 0x80)
                FAIL(s, p, "invalid UTF-8");
            p += 2;
            continue;
        case C_U3:
        case C_U4: {
            long n = str_class[ch] == C_U3 ? 3 : 4;
            if (end - p < n)
                FAIL(s, end, "unexpected end of input");
            /* The second byte's range excludes overlong forms (E0 needs A0.., F0 needs 90..),
             * UTF-16 surrogates (ED needs ..9F) and code points past U+10FFFF (F4 needs ..8F). */
            unsigned char c1 = p[1];
            unsigned char lo = ch == 0xE0 ? 0xA0 : ch == 0xF0 ? 0x90 : 0x80;
            unsigned char hi = ch == 0xED ? 0x9F : ch == 0xF4 ? 0x8F : 0xBF;
            if (c1 < lo || c1 > hi || (p[2] & 0xC0) != 0x80 || (n == 4 && (p[3] & 0xC0) != 0x80))
                FAIL(s, p, "invalid UTF-8");
            p += n;
            continue;
        }
        default:
            FAIL(s, p, "invalid UTF-8");
        }
    }
}

/* The digits a fraction or an exponent must have: one or more at *pp; leaves *pp after them. */
static inline int scan_digits(scan_t *s, const unsigned char **pp)
{
    const unsigned char *p = *pp;
    const unsigned char *end = s->end;
    if (p >= end)
        FAIL(s, end, "unexpected end of input");
    if (*p < '0' || *p > '9')
        FAIL(s, p, "invalid number");
    while (p < end && *p >= '0' && *p <= '9')
        p++;
    *pp = p;
    return 0;
}

/* Scans a number starting at s->p ('-' or a digit). */
static inline int scan_number(scan_t *s)
{
    const unsigned char *p = s->p;
    const unsigned char *end = s->end;
    if (*p == '-')
        p++;
    if (p >= end)
        FAIL(s, end, "unexpected end of input");
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        p++;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    } else {
        FAIL(s, p, "invalid number");
    }
    if (p < end && *p == '.') {
        p++;
        if (scan_digits(s, &p) != 0)
            return -1;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (scan_digits(s, &p) != 0)
            return -1;
    }
    s->p = p;
    return 0;
}

static inline int scan_literal(scan_t *s, const char *lit, size_t n)
{
    size_t have = (size_t)(s->end - s->p);
    if (have >= n && memcmp(s->p, lit, n) == 0) {
        s->p += n;
        return 0;
    }
    /* Report the first byte that differs, or the end when the input stops inside the word. */
    for (size_t i = 0; i < n; i++) {
        if (i == have)
            FAIL(s, s->end, "unexpected end of input");
        if (s->p[i] != (unsigned char)lit[i])
            FAIL(s, s->p + i, "invalid literal");
    }
    return 0; /* not reached: the memcmp above matched */
}

static inline void skip_ws(scan_t *s)
{
    /* Bodies from JSON.stringify and most clients have no whitespace at all: one compare. */
    if (s->p < s->end && *s->p <= ' ') {
        while (s->p < s->end && is_ws[*s->p])
            s->p++;
    }
}

/* Which envelope member a key (raw text between the quotes) names, or -1. */
static int member_index(const unsigned char *k, size_t n, int escaped)
{
    /* None of our names is longer than 7 characters, each at most a 6-byte \uXXXX escape. */
    char buf[7 * 6];
    if (escaped) {
        if (n > sizeof buf)
            return -1;
        n = jrpc__json_unescape((const char *)k, n, buf);
        k = (const unsigned char *)buf;
    }
    switch (n) {
    case 2:
        return memcmp(k, "id", 2) == 0 ? JRPC__M_ID : -1;
    case 5:
        return memcmp(k, "error", 5) == 0 ? JRPC__M_ERROR : -1;
    case 6:
        if (memcmp(k, "method", 6) == 0)
            return JRPC__M_METHOD;
        if (memcmp(k, "params", 6) == 0)
            return JRPC__M_PARAMS;
        return memcmp(k, "result", 6) == 0 ? JRPC__M_RESULT : -1;
    case 7:
        return memcmp(k, "jsonrpc", 7) == 0 ? JRPC__M_JSONRPC : -1;
    default:
        return -1;
    }
}

static uint8_t type_of(unsigned char c)
{
    switch (c) {
    case '{':
        return JRPC_JSON_OBJECT;
    case '[':
        return JRPC_JSON_ARRAY;
    case '"':
        return JRPC_JSON_STRING;
    case 't':
        return JRPC_JSON_TRUE;
    case 'f':
        return JRPC_JSON_FALSE;
    case 'n':
        return JRPC_JSON_NULL;
    default:
        return JRPC_JSON_NUMBER;
    }
}

/* The state machine shared by the two entry points; `env` NULL validates only. */
static inline __attribute__((always_inline)) int
scan_run(const char *text, size_t n, unsigned max_depth, size_t max_items, jrpc__arena_t *arena,
         jrpc__envelope_t *env, jrpc__json_err_t *err)
{
    scan_t s;
    s.start = s.p = (const unsigned char *)text;
    s.end = s.p + n;
    s.msg = NULL;
    s.escaped = 0;
    if (max_depth == 0)
        max_depth = JRPC_JSON_MAX_DEPTH;

    /* The container stack: 1 = object, 0 = array. Depths up to 256 (twice the default) stay on
     * the C stack; only a caller that raises max_depth past that pays a malloc. */
    unsigned char local[256];
    unsigned char *stack = local;
    if (max_depth > sizeof local) {
        stack = malloc(max_depth);
        if (stack == NULL)
            return JRPC_ENOMEM;
    }
    unsigned depth = 0;
    int rc = 0;

    /* Envelope recording. Items are values at item_depth (the root, or inside a root array);
     * their members are values of keys read at item_depth + 1. */
    unsigned item_depth = 0;
    size_t cap = 0;
    jrpc__item_t *item = NULL;
    int member = -1;
    const unsigned char *member_start = NULL;
    if (env != NULL) {
        env->is_batch = 0;
        env->count = 0;
        env->recorded = 0;
        env->items = NULL;
    }

    skip_ws(&s);
    if (s.p >= s.end) {
        s.msg = "empty input";
        goto fail;
    }
    if (env != NULL && *s.p == '[')
        item_depth = 1;

value:
    if (s.p >= s.end) {
        s.msg = "unexpected end of input";
        goto fail;
    }
    if (env != NULL) {
        if (depth == item_depth && env->count >= max_items) {
            env->count++; /* past the cap: validated and counted, not described */
            item = NULL;
        } else if (depth == item_depth) {
            if (env->count == cap) {
                size_t ncap = cap ? cap * 2 : (item_depth ? 16 : 1);
                jrpc__item_t *grown = jrpc__arena_realloc(arena, env->items, cap * sizeof(*grown),
                                                          ncap * sizeof(*grown));
                if (grown == NULL) {
                    rc = JRPC_ENOMEM;
                    goto out;
                }
                env->items = grown;
                cap = ncap;
            }
            item = &env->items[env->count++];
            env->recorded = env->count;
            memset(item, 0, sizeof(*item));
            item->value.ptr = (const char *)s.p;
            item->type = type_of(*s.p);
        } else if (depth == item_depth + 1 && member >= 0) {
            member_start = s.p;
        }
    }
    switch (*s.p) {
    case '{':
    case '[': {
        unsigned char obj = *s.p == '{';
        if (depth == max_depth) {
            s.msg = "nesting too deep";
            goto fail;
        }
        stack[depth++] = obj;
        s.p++;
        skip_ws(&s);
        if (s.p < s.end && *s.p == (obj ? '}' : ']')) { /* empty container */
            s.p++;
            depth--;
            goto after;
        }
        if (obj)
            goto key;
        goto value;
    }
    case '"':
        if (scan_string(&s) != 0)
            goto fail;
        goto after;
    case 't':
        if (scan_literal(&s, "true", 4) != 0)
            goto fail;
        goto after;
    case 'f':
        if (scan_literal(&s, "false", 5) != 0)
            goto fail;
        goto after;
    case 'n':
        if (scan_literal(&s, "null", 4) != 0)
            goto fail;
        goto after;
    case '-':
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9':
        if (scan_number(&s) != 0)
            goto fail;
        goto after;
    default:
        s.msg = "unexpected character";
        goto fail;
    }

key:
    /* s.p is at the first non-space byte after '{' or ','. */
    if (s.p >= s.end) {
        s.msg = "unexpected end of input";
        goto fail;
    }
    if (*s.p != '"') {
        s.msg = "expected a member name";
        goto fail;
    }
    {
        const unsigned char *k = s.p + 1;
        if (scan_string(&s) != 0)
            goto fail;
        if (env != NULL && depth == item_depth + 1 && env->recorded == env->count)
            member = member_index(k, (size_t)(s.p - 1 - k), s.escaped);
    }
    skip_ws(&s);
    if (s.p >= s.end) {
        s.msg = "unexpected end of input";
        goto fail;
    }
    if (*s.p != ':') {
        s.msg = "expected ':'";
        goto fail;
    }
    s.p++;
    skip_ws(&s);
    goto value;

after:
    /* A value ended at s.p (container closers included). */
    if (env != NULL) {
        if (depth == item_depth && item != NULL) {
            item->value.len = (size_t)((const char *)s.p - item->value.ptr);
            item = NULL;
        } else if (depth == item_depth + 1 && member >= 0 && member_start != NULL) {
            /* The current item is an object (keys only exist there at this depth). */
            jrpc__item_t *it = &env->items[env->count - 1];
            if (it->member[member].ptr != NULL)
                it->dup |= (uint8_t)(1u << member);
            it->member[member].ptr = (const char *)member_start;
            it->member[member].len = (size_t)(s.p - member_start);
            if (member == JRPC__M_METHOD)
                it->method_escaped = (uint8_t)(*member_start == '"' && s.escaped);
            member = -1;
            member_start = NULL;
        }
    }
    skip_ws(&s);
    if (depth == 0) {
        if (s.p != s.end) {
            s.msg = "unexpected data after the JSON value";
            goto fail;
        }
        goto out;
    }
    if (s.p >= s.end) {
        s.msg = "unexpected end of input";
        goto fail;
    }
    {
        unsigned char obj = stack[depth - 1];
        if (*s.p == ',') {
            s.p++;
            skip_ws(&s);
            if (obj)
                goto key;
            goto value;
        }
        if (*s.p == (obj ? '}' : ']')) {
            s.p++;
            depth--;
            goto after;
        }
        s.msg = obj ? "expected ',' or '}'" : "expected ',' or ']'";
        goto fail;
    }

fail:
    rc = JRPC_EJSON;
    if (err != NULL) {
        err->msg = s.msg;
        err->offset = (size_t)(s.p - s.start);
    }
out:
    if (rc == 0 && env != NULL)
        env->is_batch = item_depth == 1;
    if (stack != local)
        free(stack);
    return rc;
}

int jrpc__envelope_scan_max(const char *p, size_t n, unsigned max_depth, size_t max_items,
                            jrpc__arena_t *arena, jrpc__envelope_t *env, jrpc__json_err_t *err)
{
    return scan_run(p, n, max_depth, max_items, arena, env, err);
}

int jrpc__envelope_scan(const char *p, size_t n, unsigned max_depth, jrpc__arena_t *arena,
                        jrpc__envelope_t *env, jrpc__json_err_t *err)
{
    return scan_run(p, n, max_depth, SIZE_MAX, arena, env, err);
}

int jrpc__json_check(const char *p, size_t n, unsigned max_depth, jrpc__json_err_t *err)
{
    return scan_run(p, n, max_depth, SIZE_MAX, NULL, NULL, err);
}

JRPC_EXTERN int jrpc_json_validate(const char *p, size_t n, unsigned max_depth, size_t *err_offset)
{
    jrpc__json_err_t err = {NULL, 0};
    int rc = jrpc__json_check(p, n, max_depth, &err);
    if (rc != 0 && err_offset != NULL)
        *err_offset = err.offset;
    return rc;
}
