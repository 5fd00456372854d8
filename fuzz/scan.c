/* SPDX-License-Identifier: MIT */
/* scan.c — libFuzzer target for the envelope scanner (src/json/scan.c), with the accessors and the
 * writer riding along on every accepted input.
 *
 * For each input:
 *  1. jrpc__envelope_scan and jrpc__json_check must give the same verdict (and error offset);
 *  2. that verdict must equal the harness's own reference validator's (fuzz/ref.c), at the default
 *     depth: the reference is the judge;
 *  3. when accepted, every recorded span lies inside the input and validates on its own, the items
 *     are exactly the top-level elements, and each member span, duplicate bit and method_escaped
 *     flag agrees with what the accessors (src/json/value.c) find walking the same object;
 *  4. every value of an accepted input goes through the accessors and back out through the writer:
 *     strings unescape to valid UTF-8 and round-trip, numbers agree with libc's strtod;
 *  5. yajl (validation only) must agree too, except for the named classes of faults yajl is known
 *     to have; a disagreement is explained only when the reference, tolerating exactly those
 *     classes, accepts the input. Anything else aborts.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "ref.h"
#include "json/internal.h"

/* What yajl 2.1 is known to accept that RFC 8259 does not: its UTF-8 check only counts
 * continuation bytes (overlong forms, surrogates, code points up to U+1FFFFF pass), it never
 * checks that \u surrogates pair up, its lexer skips \f and \v as whitespace, and after a
 * complete value it ignores a trailing string that never closes (`1 "abc`: its trailing-garbage
 * check sees an unfinished token, and yajl_complete_parse does not look again). It also has no
 * depth limit, which is a difference of policy (ours is JRPC_JSON_MAX_DEPTH), not a fault. */
#define YAJL_FAULTS                                                                                \
    (REF_BIT(REF_UTF8_OVERLONG) | REF_BIT(REF_UTF8_SURROGATE) | REF_BIT(REF_UTF8_RANGE) |          \
     REF_BIT(REF_ESC_SURROGATE) | REF_BIT(REF_WS_EXTRA) | REF_BIT(REF_TRAILING_OPEN))

/* The reference recurses once per level: past this depth the yajl comparison is skipped (the
 * scanner and the reference have still judged the input at the default depth). */
#define REF_DEEPEST 2000

static unsigned long n_inputs, n_accepted, n_yajl_agree, n_skipped_deep;
static unsigned long n_class[REF_NCLASS]; /* disagreements with yajl, by class */
static unsigned long n_depth_class;

static void print_stats(void)
{
    fprintf(stderr, "fuzz_scan: %lu inputs, %lu accepted, yajl agreed on %lu", n_inputs, n_accepted,
            n_yajl_agree);
    for (int c = 0; c < REF_NCLASS; c++)
        if (n_class[c] != 0)
            fprintf(stderr, ", %s %lu", ref_class_name((ref_class_t)c), n_class[c]);
    if (n_depth_class != 0)
        fprintf(stderr, ", depth %lu", n_depth_class);
    if (n_skipped_deep != 0)
        fprintf(stderr, ", too deep to compare %lu", n_skipped_deep);
    fprintf(stderr, "\n");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    atexit(print_stats);
    return 0;
}

#define FUZZ_NAME "fuzz_scan"
#include "check.h"

static const char *base;
static size_t base_len;

static void check_inside(jrpc_json_t v, const char *what)
{
    CHECK(v.ptr >= base && v.len <= base_len && (size_t)(v.ptr - base) <= base_len - v.len,
          "%s span outside the input", what);
}

static int span_eq(jrpc_json_t a, jrpc_json_t b)
{
    return a.ptr == b.ptr && a.len == b.len;
}

static int valid(jrpc_json_t v)
{
    jrpc__json_err_t err;
    return jrpc__json_check(v.ptr, v.len, 0, &err) == 0;
}

/* ---- yajl ------------------------------------------------------------------------------------ */

static int yajl_accepts(const uint8_t *p, size_t n)
{
    /* NULL callbacks: yajl validates and converts nothing (no number overflow errors). */
    yajl_handle h = yajl_alloc(NULL, NULL, NULL);
    if (h == NULL)
        abort();
    yajl_config(h, yajl_allow_comments, 0);
    yajl_config(h, yajl_dont_validate_strings, 0);
    yajl_config(h, yajl_allow_trailing_garbage, 0);
    yajl_config(h, yajl_allow_multiple_values, 0);
    yajl_config(h, yajl_allow_partial_values, 0);
    yajl_status s = yajl_parse(h, p, n);
    if (s == yajl_status_ok)
        s = yajl_complete_parse(h);
    yajl_free(h);
    return s == yajl_status_ok;
}

static void differential_yajl(const uint8_t *p, size_t n, int ours)
{
    int theirs = yajl_accepts(p, n);
    if (theirs == ours) {
        n_yajl_agree++;
        return;
    }
    if (!theirs)
        die("yajl rejects what the scanner and the reference accept (no known class)");
    /* yajl accepts, we reject: explained when only yajl's known faults (or our depth limit)
     * stand between the input and strict JSON. */
    unsigned depth = ref_depth(p, n);
    if (depth > REF_DEEPEST) {
        n_skipped_deep++;
        return;
    }
    ref_result_t res;
    unsigned limit = depth > JRPC_JSON_MAX_DEPTH ? depth : JRPC_JSON_MAX_DEPTH;
    if (!ref_check(p, n, limit, YAJL_FAULTS, &res))
        die("yajl accepts what the scanner rejects, and it is none of yajl's known faults "
            "(reference: %s at %zu)",
            ref_class_name(res.err), res.offset);
    int named = 0;
    for (int c = 0; c < REF_NCLASS; c++) {
        if (res.used & REF_BIT(c)) {
            n_class[c]++;
            named = 1;
        }
    }
    if (depth > JRPC_JSON_MAX_DEPTH) {
        n_depth_class++;
        named = 1;
    }
    CHECK(named, "yajl and the scanner disagree but the reference names no class");
}

/* ---- Envelope -------------------------------------------------------------------------------- */

static const struct {
    const char *name;
    size_t len;
} members[JRPC__M_COUNT] = {
    [JRPC__M_JSONRPC] = {"jsonrpc", 7}, [JRPC__M_METHOD] = {"method", 6},
    [JRPC__M_PARAMS] = {"params", 6},   [JRPC__M_ID] = {"id", 2},
    [JRPC__M_RESULT] = {"result", 6},   [JRPC__M_ERROR] = {"error", 5},
};

static void check_item(const jrpc__item_t *it)
{
    check_inside(it->value, "item");
    CHECK(it->value.len > 0 && valid(it->value), "item span does not validate");
    CHECK(it->type == jrpc_json_type(it->value), "item type %d, accessor says %d", it->type,
          jrpc_json_type(it->value));
    if (it->type != JRPC_JSON_OBJECT) {
        for (int m = 0; m < JRPC__M_COUNT; m++)
            CHECK(it->member[m].ptr == NULL, "member recorded in a non-object item");
        CHECK(it->dup == 0 && it->method_escaped == 0, "flags set on a non-object item");
        return;
    }
    /* Walk the object with the accessors and find each member's last occurrence ourselves. */
    jrpc_json_t last[JRPC__M_COUNT] = {{NULL, 0}};
    unsigned seen[JRPC__M_COUNT] = {0};
    jrpc_json_iter_t iter;
    jrpc_json_t k, v;
    CHECK(jrpc_json_iter_init(&iter, it->value) == 0, "object item does not iterate");
    while (jrpc_json_iter_next(&iter, &k, &v)) {
        for (int m = 0; m < JRPC__M_COUNT; m++) {
            if (jrpc_json_string_eq(k, members[m].name, members[m].len)) {
                last[m] = v;
                seen[m]++;
            }
        }
    }
    for (int m = 0; m < JRPC__M_COUNT; m++) {
        CHECK(span_eq(it->member[m], last[m]), "member \"%s\": scanner and accessors differ",
              members[m].name);
        CHECK(!!(it->dup & (1u << m)) == (seen[m] > 1), "member \"%s\": dup bit wrong",
              members[m].name);
        if (it->member[m].ptr != NULL) {
            check_inside(it->member[m], members[m].name);
            CHECK(it->member[m].ptr >= it->value.ptr &&
                      it->member[m].ptr + it->member[m].len <= it->value.ptr + it->value.len,
                  "member \"%s\" outside its item", members[m].name);
            CHECK(valid(it->member[m]), "member \"%s\" span does not validate", members[m].name);
        }
    }
    jrpc_json_t meth = it->member[JRPC__M_METHOD];
    int esc = meth.ptr != NULL && meth.ptr[0] == '"' && memchr(meth.ptr, '\\', meth.len) != NULL;
    CHECK(it->method_escaped == esc, "method_escaped is %d, want %d", it->method_escaped, esc);
}

static void check_envelope(const char *p, size_t n, const jrpc__envelope_t *env)
{
    jrpc_json_t whole = {p, n};
    if (jrpc_json_type(whole) == JRPC_JSON_ARRAY) {
        CHECK(env->is_batch == 1, "top-level array but is_batch 0");
        jrpc_json_iter_t iter;
        jrpc_json_t v;
        size_t i = 0;
        jrpc_json_iter_init(&iter, whole);
        while (jrpc_json_iter_next(&iter, NULL, &v)) {
            CHECK(i < env->count, "more elements than items (%zu)", env->count);
            CHECK(span_eq(env->items[i].value, v), "item %zu span differs from the element", i);
            i++;
        }
        CHECK(i == env->count, "%zu elements, %zu items", i, env->count);
    } else {
        CHECK(env->is_batch == 0 && env->count == 1, "single value: is_batch %d count %zu",
              env->is_batch, env->count);
        /* The item is the value without its surrounding whitespace. */
        size_t a = 0, b = n;
        while (a < n && strchr(" \t\r\n", p[a]) != NULL)
            a++;
        while (b > a && strchr(" \t\r\n", p[b - 1]) != NULL)
            b--;
        CHECK(env->items[0].value.ptr == p + a && env->items[0].value.len == b - a,
              "single item span is not the trimmed text");
    }
    for (size_t i = 0; i < env->count; i++)
        check_item(&env->items[i]);
}

/* ---- Accessors and writer -------------------------------------------------------------------- */

static void check_string(jrpc_json_t v)
{
    size_t body = v.len - 2, len = 0;
    char *buf = malloc(body + 1);
    CHECK(jrpc_json_string(v, buf, body + 1, &len) == 0, "string does not unescape");
    CHECK(len <= body, "unescaped string grew");
    CHECK(ref_utf8_valid((const unsigned char *)buf, len), "unescaped string is not UTF-8");
    CHECK(jrpc_json_string_eq(v, buf, len), "string_eq false on its own value");
    if (len > 0) {
        size_t len2 = 0;
        char *small = malloc(len); /* one byte short of the NUL: ASan sees any write past it */
        CHECK(jrpc_json_string(v, small, len, &len2) == JRPC_ERANGE && len2 == len,
              "too-small buffer not reported with the needed length");
        free(small);
        CHECK(!jrpc_json_string_eq(v, buf, len - 1), "string_eq true on a shorter value");
    }
    /* Out through the writer and back. */
    jrpc_buf_t out;
    jrpc_buf_init(&out);
    CHECK(jrpc_buf_json_string(&out, buf, len) == 0, "writer failed");
    CHECK(jrpc__json_check(out.ptr, out.len, 0, NULL) == 0, "writer output is not JSON");
    CHECK(jrpc_json_string_eq((jrpc_json_t){out.ptr, out.len}, buf, len),
          "writer output reads back differently");
    jrpc_buf_free(&out);
    free(buf);
}

static void check_number(jrpc_json_t v)
{
    char *text = malloc(v.len + 1);
    memcpy(text, v.ptr, v.len);
    text[v.len] = '\0';
    int integral = strpbrk(text, ".eE") == NULL;

    int64_t i;
    int rc = jrpc_json_int64(v, &i);
    CHECK(integral ? (rc == 0 || rc == JRPC_ERANGE) : rc == JRPC_ETYPE, "int64 rc %d", rc);
    if (rc == 0) {
        jrpc_buf_t out;
        jrpc_buf_init(&out);
        jrpc_buf_json_int64(&out, i);
        const char *want = strcmp(text, "-0") == 0 ? "0" : text;
        CHECK(out.len == strlen(want) && memcmp(out.ptr, want, out.len) == 0,
              "int64 does not round-trip");
        jrpc_buf_free(&out);
    }
    uint64_t u;
    rc = jrpc_json_uint64(v, &u);
    CHECK(integral ? (rc == 0 || rc == JRPC_ERANGE) : rc == JRPC_ETYPE, "uint64 rc %d", rc);
    if (rc == 0)
        CHECK(text[0] != '-' || u == 0, "negative uint64");

    /* The accessor keeps ~780 significant digits and rounds like libc on the full text. */
    double d, want = strtod(text, NULL);
    rc = jrpc_json_double(v, &d);
    if (isinf(want)) {
        CHECK(rc == JRPC_ERANGE, "double overflow not reported (rc %d)", rc);
    } else {
        CHECK(rc == 0 && memcmp(&d, &want, sizeof d) == 0, "double %.17g, strtod %.17g", d, want);
        jrpc_buf_t out;
        jrpc_buf_init(&out);
        CHECK(jrpc_buf_json_double(&out, d) == 0, "writer refused a finite double");
        double back;
        CHECK(jrpc_json_double((jrpc_json_t){out.ptr, out.len}, &back) == 0 &&
                  memcmp(&back, &d, sizeof d) == 0,
              "double does not round-trip through the writer");
        jrpc_buf_free(&out);
    }
    free(text);
}

/* Every value of an accepted text through the accessors (depth is bounded by the scanner's). */
static void walk(jrpc_json_t v)
{
    CHECK(valid(v), "accessor span does not validate");
    /* Only the top level can carry whitespace; the checks below compare exact text. */
    while (v.len > 0 && strchr(" \t\r\n", v.ptr[0]) != NULL)
        v.ptr++, v.len--;
    while (v.len > 0 && strchr(" \t\r\n", v.ptr[v.len - 1]) != NULL)
        v.len--;
    check_inside(v, "value");
    switch (jrpc_json_type(v)) {
    case JRPC_JSON_STRING:
        check_string(v);
        return;
    case JRPC_JSON_NUMBER:
        check_number(v);
        return;
    case JRPC_JSON_TRUE:
    case JRPC_JSON_FALSE: {
        int b;
        CHECK(jrpc_json_bool(v, &b) == 0 && b == (jrpc_json_type(v) == JRPC_JSON_TRUE), "bool");
        return;
    }
    case JRPC_JSON_NULL:
        return;
    case JRPC_JSON_ARRAY:
    case JRPC_JSON_OBJECT:
        break;
    default:
        die("accessor gives no type for a valid value");
    }
    int object = jrpc_json_type(v) == JRPC_JSON_OBJECT;
    size_t count = jrpc_json_count(v), i = 0;
    jrpc_json_iter_t iter;
    jrpc_json_t k, e;
    jrpc_json_iter_init(&iter, v);
    while (jrpc_json_iter_next(&iter, &k, &e)) {
        if (object) {
            CHECK(valid(k) && k.ptr[0] == '"', "member name span is not a string");
            walk(k);
            /* jrpc_json_get finds this name's last occurrence (names with NUL cannot be asked). */
            if (count <= 64) {
                char name[256];
                size_t len;
                if (jrpc_json_string(k, name, sizeof name, &len) == 0 &&
                    memchr(name, 0, len) == NULL) {
                    jrpc_json_t got, kk, ee, want = {NULL, 0};
                    jrpc_json_iter_t again;
                    jrpc_json_iter_init(&again, v);
                    while (jrpc_json_iter_next(&again, &kk, &ee))
                        if (jrpc_json_string_eq(kk, name, len))
                            want = ee;
                    CHECK(jrpc_json_get(v, name, &got) == 0 && span_eq(got, want),
                          "get does not find the last duplicate");
                }
            }
        } else {
            CHECK(k.ptr == NULL, "array element with a key");
            jrpc_json_t at;
            if (i < 64)
                CHECK(jrpc_json_at(v, i, &at) == 0 && span_eq(at, e), "at(%zu) differs", i);
        }
        walk(e);
        i++;
    }
    CHECK(i == count, "count %zu, iterated %zu", count, i);
    if (!object) {
        jrpc_json_t at;
        CHECK(jrpc_json_at(v, count, &at) == JRPC_ENOENT, "at(count) found something");
    }
}

/* ---- Entry point ----------------------------------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    cur_data = data;
    cur_size = size;
    base = p;
    base_len = size;
    n_inputs++;

    jrpc__arena_t arena;
    jrpc__arena_init(&arena);
    jrpc__envelope_t env;
    jrpc__json_err_t e1 = {NULL, 0}, e2 = {NULL, 0};
    int rc1 = jrpc__envelope_scan(p, size, 0, &arena, &env, &e1);
    int rc2 = jrpc__json_check(p, size, 0, &e2);
    CHECK(rc1 == rc2, "envelope_scan says %d, json_check says %d", rc1, rc2);
    CHECK(rc1 == 0 || rc1 == JRPC_EJSON, "unexpected result %d", rc1);
    if (rc1 != 0) {
        CHECK(e1.msg != NULL && e1.offset <= size, "bad error (%s at %zu)", e1.msg, e1.offset);
        CHECK(e1.offset == e2.offset, "error offsets differ: %zu and %zu", e1.offset, e2.offset);
    }
    int ours = rc1 == 0;

    ref_result_t res;
    int ref = ref_check(data, size, JRPC_JSON_MAX_DEPTH, 0, &res);
    CHECK(ours == ref, "scanner %s, reference %s (%s at %zu; scanner: %s at %zu)",
          ours ? "accepts" : "rejects", ref ? "accepts" : "rejects", ref_class_name(res.err),
          res.offset, ours ? "-" : e1.msg, e1.offset);

    /* A small limit too, so the depth check itself is judged on every shape of input. */
    unsigned small = 1 + (unsigned)(size % 6);
    int ours_small = jrpc__envelope_scan(p, size, small, &arena, &env, &e1) == 0;
    CHECK(ours_small == (jrpc__json_check(p, size, small, &e2) == 0),
          "entry points disagree at max_depth %u", small);
    CHECK(ours_small == ref_check(data, size, small, 0, &res),
          "scanner %s at max_depth %u, reference %s (%s at %zu)",
          ours_small ? "accepts" : "rejects", small, ours_small ? "rejects" : "accepts",
          ref_class_name(res.err), res.offset);
    if (ours)
        jrpc__envelope_scan(p, size, 0, &arena, &env, &e1); /* the envelope checked below */

    if (ours) {
        n_accepted++;
        check_envelope(p, size, &env);
        walk((jrpc_json_t){p, size});
    }
    jrpc__arena_free(&arena);

    differential_yajl(data, size, ours);
    return 0;
}
