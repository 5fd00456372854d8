/* SPDX-License-Identifier: MIT */
/* internal.h — private interface of src/json: the envelope scanner (validate a request body once,
 * strictly, and record where each item's JSON-RPC members are) and helpers the writer and the
 * accessors share. Never installed. */
#ifndef JRPC_JSON_INTERNAL_H
#define JRPC_JSON_INTERNAL_H

#include "../util/arena.h"
#include "jrpc.h"

#include <stddef.h>
#include <stdint.h>

/* Deepest nesting accepted by default. 128 covers any real params (geth's and Ethereum clients'
 * payloads nest < 10 levels) while bounding the scanner's explicit stack and the time an
 * adversary can make accessors spend skipping values. */
#define JRPC_JSON_MAX_DEPTH JRPC_MAX_DEPTH

/* Where and why a text is not JSON: `msg` is static, `offset` the byte where it went wrong. */
typedef struct jrpc__json_err {
    const char *msg;
    size_t offset;
} jrpc__json_err_t;

/* The envelope members the scanner records, by index into jrpc__item_t.member: a request's, and
 * an answer's result and error (the gateway reads upstream answers with the same single pass). */
enum {
    JRPC__M_JSONRPC = 0,
    JRPC__M_METHOD,
    JRPC__M_PARAMS,
    JRPC__M_ID,
    JRPC__M_RESULT,
    JRPC__M_ERROR,
    JRPC__M_COUNT
};

/* One request item: the whole top-level body when it is not an array, else one array element. */
typedef struct jrpc__item {
    jrpc_json_t value;                 /* the item's whole text */
    jrpc_json_t member[JRPC__M_COUNT]; /* raw text of each envelope member's value; ptr NULL if
                                          absent (or when value is not an object) */
    uint8_t type;                      /* jrpc_json_type_t of value */
    uint8_t dup;                       /* bit (1 << JRPC__M_*) set when that member repeats; the
                                          member[] span is then the last occurrence */
    uint8_t method_escaped;            /* the method string contains a backslash escape */
} jrpc__item_t;

typedef struct jrpc__envelope {
    int is_batch;        /* the top-level value is an array */
    size_t count;        /* items: array elements, or 1 */
    size_t recorded;     /* items described in `items` (count, unless capped by max_items) */
    jrpc__item_t *items; /* recorded items, allocated from the arena given to the scan */
} jrpc__envelope_t;

/* Validates p[0..n) as exactly one JSON text (RFC 8259: whitespace around one value, strict
 * numbers, escapes and UTF-8 — no overlong forms, no surrogates encoded in UTF-8, no lone
 * surrogate \u escapes, no bytes past U+10FFFF, no raw control characters in strings) nested at
 * most max_depth deep (0 = JRPC_JSON_MAX_DEPTH), in a single pass that also fills *env.
 * Returns 0, or JRPC_EJSON with *err set (nothing in *env is meaningful then), or JRPC_ENOMEM.
 * p need not be NUL-terminated and is never read past n. */
int jrpc__envelope_scan(const char *p, size_t n, unsigned max_depth, jrpc__arena_t *arena,
                        jrpc__envelope_t *env, jrpc__json_err_t *err);

/* The same, recording only the first max_items items (the rest are validated and counted): a
 * batch far over the transport's cap costs no memory per item. */
int jrpc__envelope_scan_max(const char *p, size_t n, unsigned max_depth, size_t max_items,
                            jrpc__arena_t *arena, jrpc__envelope_t *env, jrpc__json_err_t *err);

/* The same validation without recording anything (what jrpc_json_validate calls). */
int jrpc__json_check(const char *p, size_t n, unsigned max_depth, jrpc__json_err_t *err);

/* v without surrounding JSON whitespace (a view into the same bytes); ptr NULL stays NULL. */
jrpc_json_t jrpc__json_trim(jrpc_json_t v);

/* Unescapes the body of a JSON string (the text between the quotes, already validated) into out,
 * which has room for at least n bytes (unescaping never grows text). Returns the length written. */
size_t jrpc__json_unescape(const char *p, size_t n, char *out);

#endif
