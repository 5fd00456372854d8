/* SPDX-License-Identifier: MIT */
/* ref.h — a small reference JSON validator for the fuzz harness, written independently of
 * src/json/scan.c (recursive descent, its own UTF-8 decoder) so that the two can judge each other,
 * and able to tolerate named classes of faults so that it can also explain where yajl differs. */
#ifndef JRPC_FUZZ_REF_H
#define JRPC_FUZZ_REF_H

#include <stddef.h>

/* Why a text is not strict RFC 8259 JSON. Each is also a bit (1 << class) in a tolerate mask. */
typedef enum {
    REF_OK = 0,
    REF_SYNTAX,         /* grammar: tokens, numbers, literals, escapes, trailing data */
    REF_DEPTH,          /* arrays/objects nested deeper than the limit */
    REF_CTRL,           /* raw U+0000..U+001F inside a string */
    REF_UTF8_BAD,       /* stray continuation byte, truncated sequence, lead byte F8..FF */
    REF_UTF8_OVERLONG,  /* a code point encoded in more bytes than it needs */
    REF_UTF8_SURROGATE, /* U+D800..U+DFFF encoded directly in UTF-8 */
    REF_UTF8_RANGE,     /* past U+10FFFF (lead bytes F4 9x.., F5..F7) */
    REF_ESC_SURROGATE,  /* a \u escape of a surrogate that is not part of a high+low pair */
    REF_WS_EXTRA,       /* \f or \v where whitespace may stand (not JSON whitespace) */
    REF_TRAILING_OPEN,  /* after the value: a string that never closes (`1 "abc`) */
    REF_NCLASS
} ref_class_t;

#define REF_BIT(c) (1u << (c))

typedef struct ref_result {
    ref_class_t err; /* REF_OK, or the first fault not tolerated */
    size_t offset;   /* where that fault is */
    unsigned used;   /* tolerated faults met on the way (REF_BIT mask) */
} ref_result_t;

/* Checks p[0..n) as one JSON text nested at most max_depth (arrays and objects count; `[]` is 1)
 * and returns 1 when it is valid apart from the classes in `tolerate`. Recursion is as deep as
 * the nesting, so keep max_depth within a few thousand. */
int ref_check(const unsigned char *p, size_t n, unsigned max_depth, unsigned tolerate,
              ref_result_t *res);

/* 1 when p[0..n) is valid UTF-8 (RFC 3629), checked with the reference decoder. */
int ref_utf8_valid(const unsigned char *p, size_t n);

/* The nesting depth of p[0..n) counted by brackets outside strings (for any bytes at all). */
unsigned ref_depth(const unsigned char *p, size_t n);

/* A short name for a class ("overlong-utf8" …). */
const char *ref_class_name(ref_class_t c);

#endif
