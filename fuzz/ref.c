/* SPDX-License-Identifier: MIT */
/* ref.c — the fuzz harness's own RFC 8259 validator: plain recursive descent over the grammar and
 * a UTF-8 decoder that computes each code point and then classifies it (overlong, surrogate, out
 * of range), unlike the scanner, which checks byte ranges per lead byte. It is slow and simple on
 * purpose; its only job is to be right and independent. */
#include "ref.h"

#include <stdint.h>

typedef struct ref {
    const unsigned char *p, *end, *start;
    unsigned depth, max_depth;
    unsigned tolerate;
    ref_result_t *res;
    int eof_in_string; /* a string ran into the end of the input between characters */
} ref_t;

/* Records fault c at `at`: returns 0 (go on) when it is tolerated, else -1. */
static int fault(ref_t *r, ref_class_t c, const unsigned char *at)
{
    if (r->tolerate & REF_BIT(c)) {
        r->res->used |= REF_BIT(c);
        return 0;
    }
    r->res->err = c;
    r->res->offset = (size_t)(at - r->start);
    return -1;
}

/* Decodes the sequence at p (p[0] >= 0x80): its length (1 when it is not a sequence at all) and
 * what is wrong with it, if anything. */
static size_t utf8_decode(const unsigned char *p, const unsigned char *end, ref_class_t *cls)
{
    unsigned c = p[0], cp, min;
    size_t len;
    if ((c & 0xe0) == 0xc0) {
        len = 2, cp = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3, cp = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4, cp = c & 0x07, min = 0x10000;
    } else {
        *cls = REF_UTF8_BAD;
        return 1;
    }
    if ((size_t)(end - p) < len) {
        *cls = REF_UTF8_BAD;
        return 1;
    }
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            *cls = REF_UTF8_BAD;
            return 1;
        }
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if (cp < min)
        *cls = REF_UTF8_OVERLONG;
    else if (cp >= 0xd800 && cp <= 0xdfff)
        *cls = REF_UTF8_SURROGATE;
    else if (cp > 0x10ffff)
        *cls = REF_UTF8_RANGE;
    else
        *cls = REF_OK;
    return len;
}

int ref_utf8_valid(const unsigned char *p, size_t n)
{
    const unsigned char *end = p + n;
    while (p < end) {
        if (*p < 0x80) {
            p++;
            continue;
        }
        ref_class_t cls;
        p += utf8_decode(p, end, &cls);
        if (cls != REF_OK)
            return 0;
    }
    return 1;
}

static int is_ws(ref_t *r, unsigned char c)
{
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
        return 1;
    if ((c == '\f' || c == '\v') && (r->tolerate & REF_BIT(REF_WS_EXTRA))) {
        r->res->used |= REF_BIT(REF_WS_EXTRA);
        return 1;
    }
    return 0;
}

static void ws(ref_t *r)
{
    while (r->p < r->end && is_ws(r, *r->p))
        r->p++;
}

static int syntax(ref_t *r)
{
    return fault(r, REF_SYNTAX, r->p);
}

static int hex4(const unsigned char *p, const unsigned char *end, unsigned *v)
{
    if (end - p < 4)
        return -1;
    *v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        *v = *v << 4 | d;
    }
    return 0;
}

static int string(ref_t *r)
{
    r->p++; /* opening quote */
    for (;;) {
        if (r->p >= r->end) {
            r->eof_in_string = 1;
            return syntax(r);
        }
        unsigned char c = *r->p;
        if (c == '"') {
            r->p++;
            return 0;
        }
        if (c < 0x20) {
            if (fault(r, REF_CTRL, r->p) < 0)
                return -1;
            r->p++;
        } else if (c == '\\') {
            const unsigned char *esc = r->p;
            if (r->end - r->p < 2)
                return r->p = r->end, syntax(r);
            c = r->p[1];
            if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' ||
                c == 't') {
                r->p += 2;
                continue;
            }
            if (c != 'u')
                return syntax(r);
            unsigned cp, lo;
            if (hex4(r->p + 2, r->end, &cp) < 0) {
                r->p += 2;
                return syntax(r);
            }
            r->p += 6;
            if (cp >= 0xdc00 && cp <= 0xdfff) {
                if (fault(r, REF_ESC_SURROGATE, esc) < 0)
                    return -1;
            } else if (cp >= 0xd800 && cp <= 0xdbff) {
                if (r->end - r->p >= 6 && r->p[0] == '\\' && r->p[1] == 'u' &&
                    hex4(r->p + 2, r->end, &lo) == 0 && lo >= 0xdc00 && lo <= 0xdfff)
                    r->p += 6;
                else if (fault(r, REF_ESC_SURROGATE, esc) < 0)
                    return -1;
            }
        } else if (c < 0x80) {
            r->p++;
        } else {
            ref_class_t cls;
            size_t len = utf8_decode(r->p, r->end, &cls);
            if (cls != REF_OK && fault(r, cls, r->p) < 0)
                return -1;
            r->p += len;
        }
    }
}

static int digits(ref_t *r)
{
    if (r->p >= r->end || *r->p < '0' || *r->p > '9')
        return syntax(r);
    while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
        r->p++;
    return 0;
}

static int number(ref_t *r)
{
    if (*r->p == '-')
        r->p++;
    if (r->p < r->end && *r->p == '0') {
        r->p++;
    } else if (digits(r) < 0) {
        return -1;
    }
    if (r->p < r->end && *r->p == '.') {
        r->p++;
        if (digits(r) < 0)
            return -1;
    }
    if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
        r->p++;
        if (r->p < r->end && (*r->p == '+' || *r->p == '-'))
            r->p++;
        if (digits(r) < 0)
            return -1;
    }
    return 0;
}

static int literal(ref_t *r, const char *word)
{
    for (; *word != '\0'; word++, r->p++)
        if (r->p >= r->end || *r->p != (unsigned char)*word)
            return syntax(r);
    return 0;
}

static int value(ref_t *r);

static int container(ref_t *r, unsigned char close)
{
    if (r->depth == r->max_depth)
        return fault(r, REF_DEPTH, r->p); /* never tolerated: recursion must stay bounded */
    r->depth++;
    r->p++;
    ws(r);
    if (r->p < r->end && *r->p == close) {
        r->p++;
        r->depth--;
        return 0;
    }
    for (;;) {
        if (close == '}') {
            if (r->p >= r->end || *r->p != '"')
                return syntax(r);
            if (string(r) < 0)
                return -1;
            ws(r);
            if (r->p >= r->end || *r->p != ':')
                return syntax(r);
            r->p++;
            ws(r);
        }
        if (value(r) < 0)
            return -1;
        ws(r);
        if (r->p >= r->end)
            return syntax(r);
        if (*r->p == close) {
            r->p++;
            r->depth--;
            return 0;
        }
        if (*r->p != ',')
            return syntax(r);
        r->p++;
        ws(r);
    }
}

static int value(ref_t *r)
{
    if (r->p >= r->end)
        return syntax(r);
    switch (*r->p) {
    case '{':
        return container(r, '}');
    case '[':
        return container(r, ']');
    case '"':
        return string(r);
    case 't':
        return literal(r, "true");
    case 'f':
        return literal(r, "false");
    case 'n':
        return literal(r, "null");
    default:
        if (*r->p == '-' || (*r->p >= '0' && *r->p <= '9'))
            return number(r);
        return syntax(r);
    }
}

int ref_check(const unsigned char *p, size_t n, unsigned max_depth, unsigned tolerate,
              ref_result_t *res)
{
    ref_t r = {p, p + n, p, 0, max_depth, tolerate & ~REF_BIT(REF_DEPTH), res, 0};
    res->err = REF_OK;
    res->offset = 0;
    res->used = 0;
    ws(&r);
    if (value(&r) < 0)
        return 0;
    ws(&r);
    if (r.p == r.end)
        return 1;
    if ((r.tolerate & REF_BIT(REF_TRAILING_OPEN)) && *r.p == '"') {
        /* Tolerated only when the rest is a well-formed string body that never closes. */
        const unsigned char *at = r.p;
        ref_result_t saved = *res;
        r.eof_in_string = 0;
        int closed = string(&r) == 0;
        saved.used |= res->used;
        *res = saved;
        if (!closed && r.eof_in_string) {
            res->used |= REF_BIT(REF_TRAILING_OPEN);
            return 1;
        }
        r.p = at;
    }
    syntax(&r);
    return 0;
}

unsigned ref_depth(const unsigned char *p, size_t n)
{
    unsigned depth = 0, max = 0;
    int in_string = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = 0;
        } else if (c == '"') {
            in_string = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > max)
                max = depth;
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return max;
}

const char *ref_class_name(ref_class_t c)
{
    static const char *names[REF_NCLASS] = {
        "ok",
        "syntax",
        "depth",
        "control-char",
        "bad-utf8",
        "overlong-utf8",
        "surrogate-utf8",
        "beyond-U+10FFFF-utf8",
        "lone-surrogate-escape",
        "ff-vt-whitespace",
        "trailing-open-string",
    };
    return (unsigned)c < REF_NCLASS ? names[c] : "?";
}
