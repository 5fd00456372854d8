/* SPDX-License-Identifier: MIT */
/* Unit tests of the writer (src/json/write.c): exact escapes for every control character, UTF-8
 * passed through or repaired with U+FFFD per maximal ill-formed subpart, integer and double edges,
 * the sticky buffer error, and jrpc__json_unescape. Every text written is re-validated with
 * jrpc_json_validate and read back through the accessors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/internal.h"

/* Writes s[0..n) as a JSON string, checks the text is valid JSON, and returns it (static). */
static const char *written(const char *s, size_t n, size_t *out_len)
{
    static char out[65536];
    jrpc_buf_t b;
    jrpc_buf_init(&b);
    assert_int_equal(jrpc_buf_json_string(&b, s, n), 0);
    size_t off = 0;
    assert_int_equal(jrpc_json_validate(b.ptr, b.len, 0, &off), 0);
    assert_true(b.len < sizeof out);
    memcpy(out, b.ptr, b.len);
    out[b.len] = '\0';
    *out_len = b.len;
    jrpc_buf_free(&b);
    return out;
}

/* The value that reads back from the written text of s[0..n). */
static size_t read_back(const char *s, size_t n, char *val, size_t cap)
{
    size_t len;
    const char *text = written(s, n, &len);
    size_t vlen = 0;
    assert_int_equal(jrpc_json_string((jrpc_json_t){text, len}, val, cap, &vlen), 0);
    assert_true(jrpc_json_string_eq((jrpc_json_t){text, len}, val, vlen));
    return vlen;
}

static void expect_written(const char *in, size_t n, const char *want)
{
    size_t len;
    const char *got = written(in, n, &len);
    if (len != strlen(want) || memcmp(got, want, len) != 0)
        fail_msg("wrote [%s], want [%s]", got, want);
}

/* ---- Strings --------------------------------------------------------------------------------- */

static void test_string_plain(void **state)
{
    (void)state;
    expect_written("", 0, "\"\"");
    expect_written("hello", 5, "\"hello\"");
    expect_written("a\"b\\c/d", 7, "\"a\\\"b\\\\c/d\"");
    expect_written("\x7f~ ", 3, "\"\x7f~ \""); /* DEL needs no escape */
    /* Valid UTF-8 of every length passes unchanged, also U+2028 and the last code point. */
    const char *u = "\xc2\x80\xdf\xbf\xe0\xa0\x80\xe2\x82\xac\xed\x9f\xbf\xee\x80\x80"
                    "\xef\xbf\xbf\xe2\x80\xa8\xf0\x90\x80\x80\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf";
    char want[128];
    snprintf(want, sizeof want, "\"%s\"", u);
    expect_written(u, strlen(u), want);
    /* Long runs: every kind of byte, many times over, crossing the initial reservation. */
    char big[4000], val[8000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = "ab\"\\\n\x01z"[i % 7];
    size_t n = read_back(big, sizeof big, val, sizeof val);
    assert_int_equal(n, sizeof big);
    assert_memory_equal(val, big, n);
}

static void test_string_controls(void **state)
{
    (void)state;
    static const char *want[32] = {
        "\\u0000", "\\u0001", "\\u0002", "\\u0003", "\\u0004", "\\u0005", "\\u0006", "\\u0007",
        "\\b",     "\\t",     "\\n",     "\\u000b", "\\f",     "\\r",     "\\u000e", "\\u000f",
        "\\u0010", "\\u0011", "\\u0012", "\\u0013", "\\u0014", "\\u0015", "\\u0016", "\\u0017",
        "\\u0018", "\\u0019", "\\u001a", "\\u001b", "\\u001c", "\\u001d", "\\u001e", "\\u001f"};
    char all[32], w[16], val[64];
    for (int c = 0; c < 32; c++) {
        char in = (char)c;
        snprintf(w, sizeof w, "\"%s\"", want[c]);
        expect_written(&in, 1, w);
        /* Between other text too, so runs around an escape are right. */
        char in3[3] = {'x', (char)c, 'y'};
        snprintf(w, sizeof w, "\"x%sy\"", want[c]);
        expect_written(in3, 3, w);
        all[c] = (char)c;
    }
    size_t n = read_back(all, 32, val, sizeof val);
    assert_int_equal(n, 32);
    assert_memory_equal(val, all, 32);
}

/* Invalid UTF-8: one U+FFFD for each maximal ill-formed subpart (Unicode §3.9, "best practice"). */
#define R "\xef\xbf\xbd"
static void test_string_invalid_utf8(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *want; /* the string's value, unquoted */
    } cases[] = {
        {"\x80", R}, /* stray continuation */
        {"a\xbf"
         "b",
         "a" R "b"},
        {"\xc0\x80", R R}, /* overlong NUL: C0 never starts a sequence */
        {"\xc1\xbf", R R},
        {"\xe0\x80\x80", R R R}, /* overlong 3-byte: E0 needs A0.. */
        {"\xe0\x9f\xbf", R R R},
        {"\xed\xa0\x80", R R R}, /* UTF-8 encoded surrogate U+D800 */
        {"\xed\xbf\xbf", R R R},
        {"\xf0\x80\x80\x80", R R R R}, /* overlong 4-byte */
        {"\xf4\x90\x80\x80", R R R R}, /* past U+10FFFF */
        {"\xf5\x80\x80\x80", R R R R},
        {"\xff", R},
        {"\xfe\xff", R R},
        {"\xe2\x82", R}, /* truncated at the end: one for the subpart */
        {"\xe2\x82x", R "x"},
        {"\xf0\x9f\x98", R},
        {"\xf0\x9f\x98"
         "abc",
         R "abc"},
        {"\xf0\x9f", R},
        {"\xc3", R},
        {"\xc3"
         "A",
         R "A"},
        {"\xe2\x82\xe2\x82\xac", R "\xe2\x82\xac"},
        {"\xf0\x9f\x98\x80\x80", "\xf0\x9f\x98\x80" R},
        {"ok\xe9t\xe9", "ok" R "t" R}, /* Latin-1 text */
        {"\xc3\x28", R "("},
    };
    char val[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = read_back(cases[i].in, strlen(cases[i].in), val, sizeof val);
        if (n != strlen(cases[i].want) || memcmp(val, cases[i].want, n) != 0)
            fail_msg("case %zu: wrong replacement", i);
    }
}
#undef R

/* Whatever the bytes, the text written is valid JSON (checked by the scanner). */
static void test_string_random(void **state)
{
    (void)state;
    unsigned seed = 12345;
    char in[64], val[512];
    for (int round = 0; round < 20000; round++) {
        size_t n = (size_t)(rand_r(&seed) % 64);
        for (size_t i = 0; i < n; i++) {
            int r = rand_r(&seed);
            /* Mostly high bytes, so near-valid sequences come up often. */
            in[i] = (char)(r % 3 == 0 ? r >> 8 : 0x80 | (r >> 8));
        }
        size_t len = read_back(in, n, val, sizeof val);
        /* Valid input reads back unchanged. */
        if (jrpc_json_validate(val, len, 0, NULL) == 0 && len == n)
            assert_memory_equal(val, in, n);
    }
}

/* ---- Numbers --------------------------------------------------------------------------------- */

static void expect_text(jrpc_buf_t *b, const char *want)
{
    if (b->len != strlen(want) || memcmp(b->ptr, want, b->len) != 0)
        fail_msg("wrote [%.*s], want [%s]", (int)b->len, b->ptr, want);
    assert_int_equal(jrpc_json_validate(b->ptr, b->len, 0, NULL), 0);
}

static void test_int(void **state)
{
    (void)state;
    static const int64_t iv[] = {0,   1,         -1,        9,         10,
                                 -10, 123456789, INT64_MAX, INT64_MIN, INT64_MIN + 1};
    static const char *is[] = {"0",
                               "1",
                               "-1",
                               "9",
                               "10",
                               "-10",
                               "123456789",
                               "9223372036854775807",
                               "-9223372036854775808",
                               "-9223372036854775807"};
    for (size_t i = 0; i < sizeof iv / sizeof iv[0]; i++) {
        jrpc_buf_t b;
        jrpc_buf_init(&b);
        assert_int_equal(jrpc_buf_json_int64(&b, iv[i]), 0);
        expect_text(&b, is[i]);
        int64_t back;
        assert_int_equal(jrpc_json_int64((jrpc_json_t){b.ptr, b.len}, &back), 0);
        assert_true(back == iv[i]);
        jrpc_buf_free(&b);
    }
    static const uint64_t uv[] = {0, 1, 18446744073709551615u, 14066156191713469572u,
                                  9223372036854775808u};
    static const char *us[] = {"0", "1", "18446744073709551615", "14066156191713469572",
                               "9223372036854775808"};
    for (size_t i = 0; i < sizeof uv / sizeof uv[0]; i++) {
        jrpc_buf_t b;
        jrpc_buf_init(&b);
        assert_int_equal(jrpc_buf_json_uint64(&b, uv[i]), 0);
        expect_text(&b, us[i]);
        uint64_t back;
        assert_int_equal(jrpc_json_uint64((jrpc_json_t){b.ptr, b.len}, &back), 0);
        assert_true(back == uv[i]);
        jrpc_buf_free(&b);
    }
}

static void expect_double(double v, const char *want)
{
    jrpc_buf_t b;
    jrpc_buf_init(&b);
    assert_int_equal(jrpc_buf_json_double(&b, v), 0);
    expect_text(&b, want);
    jrpc_buf_free(&b);
}

/* Writes v, checks it is valid JSON and reads back bit for bit; returns the text length. */
static size_t round_trip(double v)
{
    jrpc_buf_t b;
    jrpc_buf_init(&b);
    assert_int_equal(jrpc_buf_json_double(&b, v), 0);
    assert_int_equal(jrpc_json_validate(b.ptr, b.len, 0, NULL), 0);
    double back;
    assert_int_equal(jrpc_json_double((jrpc_json_t){b.ptr, b.len}, &back), 0);
    if (memcmp(&back, &v, sizeof v) != 0)
        fail_msg("%.17g wrote [%.*s], read back %.17g", v, (int)b.len, b.ptr, back);
    size_t n = b.len;
    jrpc_buf_free(&b);
    return n;
}

static void test_double(void **state)
{
    (void)state;
    /* Shortest form that reads back. */
    expect_double(0.0, "0");
    expect_double(-0.0, "-0");
    expect_double(1.0, "1");
    expect_double(-1.5, "-1.5");
    expect_double(0.1, "0.1");
    expect_double(0.1 + 0.2, "0.30000000000000004");
    expect_double(1.0 / 3.0, "0.3333333333333333");
    expect_double(100.0, "100");
    expect_double(1e21, "1e+21");
    expect_double(1.5e-7, "1.5e-07");
    expect_double(DBL_MAX, "1.7976931348623157e+308");
    expect_double(DBL_MIN, "2.2250738585072014e-308");
    expect_double(4.9406564584124654e-324, "4.94065645841247e-324"); /* 15 digits suffice */
    expect_double(9007199254740993.0, "9007199254740992");
    static const double edge[] = {0.0,
                                  -0.0,
                                  DBL_MAX,
                                  -DBL_MAX,
                                  DBL_MIN,
                                  DBL_TRUE_MIN,
                                  DBL_EPSILON,
                                  1e15,
                                  1e16,
                                  1e17,
                                  123456789012345680.0,
                                  5e-324,
                                  0.1,
                                  2.0 / 3.0};
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++)
        round_trip(edge[i]);
    /* Random bit patterns: every finite double reads back exactly from at most 17 digits. */
    unsigned seed = 777;
    for (int i = 0; i < 100000; i++) {
        uint64_t bits = 0;
        for (int k = 0; k < 4; k++)
            bits = bits << 16 | (uint64_t)(rand_r(&seed) & 0xffff);
        double v;
        memcpy(&v, &bits, sizeof v);
        if (!isfinite(v))
            continue;
        assert_true(round_trip(v) <= 24); /* -d.dddddddddddddddde-ddd */
    }
}

static void test_double_invalid(void **state)
{
    (void)state;
    jrpc_buf_t b;
    jrpc_buf_init(&b);
    jrpc_buf_appendz(&b, "[");
    assert_int_equal(jrpc_buf_json_double(&b, NAN), JRPC_EINVAL);
    assert_int_equal(jrpc_buf_json_double(&b, -NAN), JRPC_EINVAL);
    assert_int_equal(jrpc_buf_json_double(&b, INFINITY), JRPC_EINVAL);
    assert_int_equal(jrpc_buf_json_double(&b, -INFINITY), JRPC_EINVAL);
    assert_int_equal(b.len, 1); /* nothing appended */
    assert_int_equal(b.err, 0);
    jrpc_buf_free(&b);
}

/* A locale with a decimal comma must not leak into JSON. Skipped when none is installed. */
static void test_double_locale(void **state)
{
    (void)state;
    const char *names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "ru_RU.UTF-8", NULL};
    const char *got = NULL;
    for (int i = 0; names[i] != NULL && got == NULL; i++)
        got = setlocale(LC_NUMERIC, names[i]);
    if (got == NULL)
        skip();
    expect_double(1.5, "1.5");
    expect_double(-0.1, "-0.1");
    setlocale(LC_NUMERIC, "C");
}

/* After an allocation failure every append is a no-op that reports the error. */
static void test_sticky_error(void **state)
{
    (void)state;
    jrpc_buf_t b;
    jrpc_buf_init(&b);
    jrpc_buf_appendz(&b, "x");
    b.err = JRPC_ENOMEM;
    assert_int_equal(jrpc_buf_json_string(&b, "abc", 3), JRPC_ENOMEM);
    assert_int_equal(jrpc_buf_json_string(&b, "\n\x80", 2), JRPC_ENOMEM);
    assert_int_equal(jrpc_buf_json_int64(&b, -5), JRPC_ENOMEM);
    assert_int_equal(jrpc_buf_json_uint64(&b, 5), JRPC_ENOMEM);
    assert_int_equal(jrpc_buf_json_double(&b, 1.5), JRPC_ENOMEM);
    assert_int_equal(b.len, 1);
    jrpc_buf_free(&b);
}

/* ---- Unescaping ------------------------------------------------------------------------------ */

static void expect_unescape(const char *in, const char *want, size_t want_len)
{
    size_t n = strlen(in);
    char out[256];
    memset(out, 'Z', sizeof out);
    size_t got = jrpc__json_unescape(in, n, out);
    assert_true(got <= n);
    assert_int_equal(got, want_len);
    assert_memory_equal(out, want, want_len);
    assert_int_equal(out[n], 'Z'); /* nothing written past n bytes */
    /* In place. */
    char inplace[256];
    memcpy(inplace, in, n);
    assert_int_equal(jrpc__json_unescape(inplace, n, inplace), want_len);
    assert_memory_equal(inplace, want, want_len);
}

static void test_unescape(void **state)
{
    (void)state;
    expect_unescape("", "", 0);
    expect_unescape("plain text", "plain text", 10);
    expect_unescape("\\\"\\\\\\/\\b\\f\\n\\r\\t", "\"\\/\b\f\n\r\t", 8);
    expect_unescape("a\\u0000b", "a\0b", 3);
    expect_unescape("\\u007f\\u0080\\u07ff\\u0800\\uffff",
                    "\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf", 11);
    expect_unescape("\\u00e9\\u00E9\\u20AC", "\xc3\xa9\xc3\xa9\xe2\x82\xac", 7);
    expect_unescape("\\ud800\\udc00", "\xf0\x90\x80\x80", 4);
    expect_unescape("\\uDBFF\\uDFFF", "\xf4\x8f\xbf\xbf", 4);
    expect_unescape("x\\ud83d\\ude00y", "x\xf0\x9f\x98\x80y", 6);
    expect_unescape("\xe2\x82\xac\\n", "\xe2\x82\xac\n", 4);
    /* Not valid JSON, but still bounded and never longer than the input. */
    expect_unescape("\\ud800", "\xef\xbf\xbd", 3);
    expect_unescape("\\udc00x", "\xef\xbf\xbdx", 4);
    expect_unescape("\\ud800\\u0041",
                    "\xef\xbf\xbd"
                    "A",
                    4);
}

/* Everything the writer writes, the unescaper (via jrpc_json_string) gives back. */
static void test_round_trip_utf8(void **state)
{
    (void)state;
    char in[8], val[64];
    /* Every code point as UTF-8, in batches to keep it quick. */
    for (unsigned cp = 0; cp <= 0x10ffff; cp += (cp < 0x800 ? 1 : 61)) {
        if (cp >= 0xd800 && cp <= 0xdfff)
            continue;
        size_t n;
        if (cp < 0x80) {
            in[0] = (char)cp, n = 1;
        } else if (cp < 0x800) {
            in[0] = (char)(0xc0 | cp >> 6), in[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
        } else if (cp < 0x10000) {
            in[0] = (char)(0xe0 | cp >> 12), in[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
            in[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
        } else {
            in[0] = (char)(0xf0 | cp >> 18), in[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
            in[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), in[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
        }
        size_t got = read_back(in, n, val, sizeof val);
        assert_int_equal(got, n);
        assert_memory_equal(val, in, n);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_string_plain),
        cmocka_unit_test(test_string_controls),
        cmocka_unit_test(test_string_invalid_utf8),
        cmocka_unit_test(test_string_random),
        cmocka_unit_test(test_int),
        cmocka_unit_test(test_double),
        cmocka_unit_test(test_double_invalid),
        cmocka_unit_test(test_double_locale),
        cmocka_unit_test(test_sticky_error),
        cmocka_unit_test(test_unescape),
        cmocka_unit_test(test_round_trip_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
