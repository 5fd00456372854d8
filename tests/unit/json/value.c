/* SPDX-License-Identifier: MIT */
/* Unit tests of the accessors (src/json/value.c): types, containers, member lookup with escaped and
 * repeated names, integer and double edges, string unescaping into small buffers, and that no
 * accessor reads past its view even on truncated or garbage text (each input ends right before a
 * PROT_NONE page). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "json/internal.h"

static jrpc_json_t J(const char *s)
{
    return (jrpc_json_t){s, strlen(s)};
}

/* Asserts that v's bytes are exactly `text`. */
#define assert_span(v, text)                                                                       \
    do {                                                                                           \
        jrpc_json_t v_ = (v);                                                                      \
        assert_non_null(v_.ptr);                                                                   \
        assert_int_equal(v_.len, strlen(text));                                                    \
        assert_memory_equal(v_.ptr, text, v_.len);                                                 \
    } while (0)

/* Asserts that jrpc_json_get(o, key) finds exactly `text`. */
#define assert_get(o, key, text)                                                                   \
    do {                                                                                           \
        jrpc_json_t g_;                                                                            \
        assert_int_equal(jrpc_json_get((o), (key), &g_), 0);                                       \
        assert_span(g_, text);                                                                     \
    } while (0)

/* Asserts that jrpc_json_at(a, i) is exactly `text`. */
#define assert_at(a, i, text)                                                                      \
    do {                                                                                           \
        jrpc_json_t g_;                                                                            \
        assert_int_equal(jrpc_json_at((a), (i), &g_), 0);                                          \
        assert_span(g_, text);                                                                     \
    } while (0)

/* ---- Guarded copies: text whose last byte is the last readable byte -------------------------- */

static char *guard_base;
static size_t guard_page;

static int guard_setup(void **state)
{
    (void)state;
    guard_page = (size_t)sysconf(_SC_PAGESIZE);
    guard_base =
        mmap(NULL, 2 * guard_page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (guard_base == MAP_FAILED)
        return -1;
    return mprotect(guard_base + guard_page, guard_page, PROT_NONE);
}

static int guard_teardown(void **state)
{
    (void)state;
    munmap(guard_base, 2 * guard_page);
    return 0;
}

static jrpc_json_t guarded(const char *s, size_t n)
{
    assert_true(n <= guard_page);
    char *p = guard_base + guard_page - n;
    memcpy(p, s, n);
    return (jrpc_json_t){p, n};
}

/* ---- Types and containers -------------------------------------------------------------------- */

static void test_type(void **state)
{
    (void)state;
    assert_int_equal(jrpc_json_type((jrpc_json_t){NULL, 0}), JRPC_JSON_NONE);
    assert_int_equal(jrpc_json_type(J("")), JRPC_JSON_NONE);
    assert_int_equal(jrpc_json_type(J("  ")), JRPC_JSON_NONE);
    assert_int_equal(jrpc_json_type(J("null")), JRPC_JSON_NULL);
    assert_int_equal(jrpc_json_type(J("false")), JRPC_JSON_FALSE);
    assert_int_equal(jrpc_json_type(J("true")), JRPC_JSON_TRUE);
    assert_int_equal(jrpc_json_type(J("0")), JRPC_JSON_NUMBER);
    assert_int_equal(jrpc_json_type(J("-1.5e3")), JRPC_JSON_NUMBER);
    assert_int_equal(jrpc_json_type(J("9")), JRPC_JSON_NUMBER);
    assert_int_equal(jrpc_json_type(J("\"x\"")), JRPC_JSON_STRING);
    assert_int_equal(jrpc_json_type(J("[]")), JRPC_JSON_ARRAY);
    assert_int_equal(jrpc_json_type(J("{}")), JRPC_JSON_OBJECT);
    assert_int_equal(jrpc_json_type(J(" \t\r\n{ } \n")), JRPC_JSON_OBJECT);
}

static void test_count(void **state)
{
    (void)state;
    assert_int_equal(jrpc_json_count(J("[]")), 0);
    assert_int_equal(jrpc_json_count(J("[ ]")), 0);
    assert_int_equal(jrpc_json_count(J("{}")), 0);
    assert_int_equal(jrpc_json_count(J("[1]")), 1);
    assert_int_equal(jrpc_json_count(J("[1,2,3]")), 3);
    assert_int_equal(jrpc_json_count(J(" [ 1 , [2, 3] , {\"a\": [4]} , \"x,]\" ] ")), 4);
    assert_int_equal(jrpc_json_count(J("{\"a\":1,\"b\":{\"c\":2},\"d\":[]}")), 3);
    assert_int_equal(jrpc_json_count(J("[\"\\\"]\", \"\\\\\", \"\\\\\\\"\"]")), 3);
    assert_int_equal(jrpc_json_count(J("1")), 0);
    assert_int_equal(jrpc_json_count(J("\"[1,2]\"")), 0);
    assert_int_equal(jrpc_json_count((jrpc_json_t){NULL, 0}), 0);
}

static void test_at(void **state)
{
    (void)state;
    jrpc_json_t a = J(" [ 1 ,\"two\\\"]\", [3, [4]] ,{\"five\": 5}, true,null ,-6.5e1 ] ");
    jrpc_json_t e;
    assert_at(a, 0, "1");
    assert_at(a, 1, "\"two\\\"]\"");
    assert_at(a, 2, "[3, [4]]");
    assert_at(a, 3, "{\"five\": 5}");
    assert_at(a, 4, "true");
    assert_at(a, 5, "null");
    assert_at(a, 6, "-6.5e1");
    assert_int_equal(jrpc_json_at(a, 7, &e), JRPC_ENOENT);
    assert_int_equal(jrpc_json_at(a, SIZE_MAX, &e), JRPC_ENOENT);
    assert_int_equal(jrpc_json_at(J("[]"), 0, &e), JRPC_ENOENT);
    assert_int_equal(jrpc_json_at(J("{\"a\":1}"), 0, &e), JRPC_ETYPE);
    assert_int_equal(jrpc_json_at(J("\"[1]\""), 0, &e), JRPC_ETYPE);
    assert_int_equal(jrpc_json_at(J("7"), 0, &e), JRPC_ETYPE);
    assert_int_equal(jrpc_json_at((jrpc_json_t){NULL, 0}, 0, &e), JRPC_ETYPE);
    /* Element of an element. */
    jrpc_json_t inner;
    assert_int_equal(jrpc_json_at(a, 2, &e), 0);
    assert_int_equal(jrpc_json_at(e, 1, &inner), 0);
    assert_span(inner, "[4]");
}

static void test_get(void **state)
{
    (void)state;
    jrpc_json_t o = J("{ \"jsonrpc\" : \"2.0\", \"method\":\"m\", \"params\" : [1, {\"id\": 9}],"
                      " \"id\": 7 }");
    jrpc_json_t v;
    assert_get(o, "jsonrpc", "\"2.0\"");
    assert_get(o, "params", "[1, {\"id\": 9}]");
    assert_get(o, "id", "7"); /* not the nested "id" */
    assert_int_equal(jrpc_json_get(o, "i", &v), JRPC_ENOENT);
    assert_int_equal(jrpc_json_get(o, "idx", &v), JRPC_ENOENT);
    assert_int_equal(jrpc_json_get(o, "", &v), JRPC_ENOENT);
    assert_int_equal(jrpc_json_get(J("{}"), "a", &v), JRPC_ENOENT);
    assert_int_equal(jrpc_json_get(J("[\"a\"]"), "a", &v), JRPC_ETYPE);
    assert_int_equal(jrpc_json_get(J("\"a\""), "a", &v), JRPC_ETYPE);
    assert_int_equal(jrpc_json_get((jrpc_json_t){NULL, 0}, "a", &v), JRPC_ETYPE);

    /* Names are compared unescaped. */
    o = J("{\"\\u006dethod\": 1, \"a\\\"b\": 2, \"\\/\\\\\": 3, \"caf\\u00e9\": 4,"
          " \"\\ud83d\\ude00\": 5, \"\": 6, \"tab\\tx\": 7, \"\\u00E9\": 8}");
    assert_get(o, "method", "1");
    assert_get(o, "a\"b", "2");
    assert_get(o, "/\\", "3");
    assert_get(o, "caf\xc3\xa9", "4");
    assert_get(o, "\xf0\x9f\x98\x80", "5");
    assert_get(o, "", "6");
    assert_get(o, "tab\tx", "7");
    assert_get(o, "\xc3\xa9", "8");
    assert_int_equal(jrpc_json_get(o, "\\u006dethod", &v), JRPC_ENOENT);
    assert_int_equal(jrpc_json_get(o, "metho", &v), JRPC_ENOENT);
    assert_int_equal(jrpc_json_get(o, "methodx", &v), JRPC_ENOENT);

    /* The last duplicate wins, also when spelled differently. */
    o = J("{\"a\": 1, \"b\": 2, \"a\": [3], \"\\u0061\": {\"a\": 4}, \"b\": \"x\"}");
    assert_get(o, "a", "{\"a\": 4}");
    assert_get(o, "b", "\"x\"");
}

static void test_iter(void **state)
{
    (void)state;
    jrpc_json_iter_t it;
    jrpc_json_t k, v;

    assert_int_equal(jrpc_json_iter_init(&it, J("1")), JRPC_ETYPE);
    assert_int_equal(jrpc_json_iter_init(&it, J("\"{}\"")), JRPC_ETYPE);
    assert_int_equal(jrpc_json_iter_init(&it, (jrpc_json_t){NULL, 0}), JRPC_ETYPE);

    assert_int_equal(jrpc_json_iter_init(&it, J(" [ ] ")), 0);
    assert_int_equal(jrpc_json_iter_next(&it, &k, &v), 0);
    assert_int_equal(jrpc_json_iter_next(&it, &k, &v), 0); /* stays at the end */

    assert_int_equal(jrpc_json_iter_init(&it, J("{ }")), 0);
    assert_int_equal(jrpc_json_iter_next(&it, &k, &v), 0);

    /* Objects: keys as raw string text, quotes included; values byte-exact. */
    jrpc_json_t o = J("{\"a\\\"\" :{\"b\":[1,{\"c\":\"]\"}]}, \"d\":[[]],\"e\":\"}\"}");
    assert_int_equal(jrpc_json_iter_init(&it, o), 0);
    assert_int_equal(jrpc_json_iter_next(&it, &k, &v), 1);
    assert_span(k, "\"a\\\"\"");
    assert_span(v, "{\"b\":[1,{\"c\":\"]\"}]}");

    /* Nested: iterate the inner object and its array while the outer iterator waits. */
    jrpc_json_iter_t in;
    jrpc_json_t k2, v2;
    assert_int_equal(jrpc_json_iter_init(&in, v), 0);
    assert_int_equal(jrpc_json_iter_next(&in, &k2, &v2), 1);
    assert_span(k2, "\"b\"");
    assert_span(v2, "[1,{\"c\":\"]\"}]");
    jrpc_json_iter_t in2;
    jrpc_json_t k3, v3;
    assert_int_equal(jrpc_json_iter_init(&in2, v2), 0);
    assert_int_equal(jrpc_json_iter_next(&in2, &k3, &v3), 1);
    assert_null(k3.ptr);
    assert_span(v3, "1");
    assert_int_equal(jrpc_json_iter_next(&in2, &k3, &v3), 1);
    assert_span(v3, "{\"c\":\"]\"}");
    assert_int_equal(jrpc_json_iter_next(&in2, &k3, &v3), 0);
    assert_int_equal(jrpc_json_iter_next(&in, &k2, &v2), 0);

    assert_int_equal(jrpc_json_iter_next(&it, &k, &v), 1);
    assert_span(k, "\"d\"");
    assert_span(v, "[[]]");
    assert_int_equal(jrpc_json_iter_next(&it, NULL, &v), 1); /* key may be NULL */
    assert_span(v, "\"}\"");
    assert_int_equal(jrpc_json_iter_next(&it, &k, &v), 0);

    /* Arrays: key->ptr NULL. */
    assert_int_equal(jrpc_json_iter_init(&it, J("[\"x\", -0 ,\n{}]")), 0);
    const char *want[] = {"\"x\"", "-0", "{}"};
    for (int i = 0; i < 3; i++) {
        k.ptr = "sentinel";
        assert_int_equal(jrpc_json_iter_next(&it, &k, &v), 1);
        assert_null(k.ptr);
        assert_span(v, want[i]);
    }
    assert_int_equal(jrpc_json_iter_next(&it, &k, NULL), 0);
}

/* ---- Numbers --------------------------------------------------------------------------------- */

static void test_int64(void **state)
{
    (void)state;
    int64_t i = 42;
    assert_int_equal(jrpc_json_int64(J("0"), &i), 0);
    assert_true(i == 0);
    assert_int_equal(jrpc_json_int64(J("-0"), &i), 0);
    assert_true(i == 0);
    assert_int_equal(jrpc_json_int64(J(" 123 "), &i), 0);
    assert_true(i == 123);
    assert_int_equal(jrpc_json_int64(J("-123"), &i), 0);
    assert_true(i == -123);
    assert_int_equal(jrpc_json_int64(J("9223372036854775807"), &i), 0);
    assert_true(i == INT64_MAX);
    assert_int_equal(jrpc_json_int64(J("-9223372036854775808"), &i), 0);
    assert_true(i == INT64_MIN);
    i = 5;
    assert_int_equal(jrpc_json_int64(J("9223372036854775808"), &i), JRPC_ERANGE);
    assert_int_equal(jrpc_json_int64(J("-9223372036854775809"), &i), JRPC_ERANGE);
    assert_int_equal(jrpc_json_int64(J("18446744073709551615"), &i), JRPC_ERANGE);
    assert_int_equal(jrpc_json_int64(J("18446744073709551616"), &i), JRPC_ERANGE);
    assert_int_equal(jrpc_json_int64(J("14066156191713469572"), &i), JRPC_ERANGE);
    assert_int_equal(jrpc_json_int64(J("100000000000000000000000000000"), &i), JRPC_ERANGE);
    assert_true(i == 5); /* untouched on error */
    assert_int_equal(jrpc_json_int64(J("1.5"), &i), JRPC_ETYPE);
    assert_int_equal(jrpc_json_int64(J("1.0"), &i), JRPC_ETYPE);
    assert_int_equal(jrpc_json_int64(J("1e2"), &i), JRPC_ETYPE);
    assert_int_equal(jrpc_json_int64(J("1E2"), &i), JRPC_ETYPE);
    assert_int_equal(jrpc_json_int64(J("1e400"), &i), JRPC_ETYPE);
    assert_int_equal(jrpc_json_int64(J("-0.0"), &i), JRPC_ETYPE);
    assert_int_equal(jrpc_json_int64(J("\"1\""), &i), JRPC_ETYPE);
    assert_int_equal(jrpc_json_int64(J("true"), &i), JRPC_ETYPE);
    assert_int_equal(jrpc_json_int64(J("null"), &i), JRPC_ETYPE);
    assert_int_equal(jrpc_json_int64(J("[1]"), &i), JRPC_ETYPE);
    assert_int_equal(jrpc_json_int64(J("-"), &i), JRPC_ETYPE);
    assert_int_equal(jrpc_json_int64(J(""), &i), JRPC_ETYPE);
    assert_int_equal(jrpc_json_int64((jrpc_json_t){NULL, 0}, &i), JRPC_ETYPE);
    assert_true(i == 5);
}

static void test_uint64(void **state)
{
    (void)state;
    uint64_t u = 42;
    assert_int_equal(jrpc_json_uint64(J("0"), &u), 0);
    assert_true(u == 0);
    u = 42;
    assert_int_equal(jrpc_json_uint64(J("-0"), &u), 0);
    assert_true(u == 0);
    assert_int_equal(jrpc_json_uint64(J("18446744073709551615"), &u), 0);
    assert_true(u == UINT64_MAX);
    assert_int_equal(jrpc_json_uint64(J("14066156191713469572"), &u), 0);
    assert_true(u == 14066156191713469572u);
    assert_int_equal(jrpc_json_uint64(J("9223372036854775808"), &u), 0);
    assert_true(u == (uint64_t)INT64_MAX + 1);
    u = 7;
    assert_int_equal(jrpc_json_uint64(J("18446744073709551616"), &u), JRPC_ERANGE);
    assert_int_equal(jrpc_json_uint64(J("99999999999999999999"), &u), JRPC_ERANGE);
    assert_int_equal(jrpc_json_uint64(J("-1"), &u), JRPC_ERANGE);
    assert_int_equal(jrpc_json_uint64(J("-18446744073709551616"), &u), JRPC_ERANGE);
    assert_int_equal(jrpc_json_uint64(J("1.5"), &u), JRPC_ETYPE);
    assert_int_equal(jrpc_json_uint64(J("-1.5"), &u), JRPC_ETYPE);
    assert_int_equal(jrpc_json_uint64(J("1e3"), &u), JRPC_ETYPE);
    assert_int_equal(jrpc_json_uint64(J("\"5\""), &u), JRPC_ETYPE);
    assert_true(u == 7);
}

static double dbl(const char *s)
{
    double d = 12345.0;
    assert_int_equal(jrpc_json_double(J(s), &d), 0);
    return d;
}

static void test_double(void **state)
{
    (void)state;
    assert_true(dbl("0") == 0.0 && !signbit(dbl("0")));
    assert_true(dbl("-0") == 0.0 && signbit(dbl("-0")));
    assert_true(dbl("-0.0e5") == 0.0 && signbit(dbl("-0.0e5")));
    assert_true(dbl("1.5") == 1.5);
    assert_true(dbl(" -2.5E-3 ") == -2.5e-3);
    assert_true(dbl("0.1") == 0.1);
    assert_true(dbl("1e2") == 100.0);
    assert_true(dbl("1E+2") == 100.0);
    assert_true(dbl("123456789012345678901234567890") == 123456789012345678901234567890.0);
    assert_true(dbl("0.000001234") == 0.000001234);
    assert_true(dbl("9223372036854775807") == 9223372036854775807.0);
    assert_true(dbl("1.7976931348623157e308") == 1.7976931348623157e308);
    assert_true(dbl("2.2250738585072014e-308") == 2.2250738585072014e-308);
    assert_true(dbl("4.9406564584124654e-324") == 4.9406564584124654e-324);
    /* Underflow rounds to zero; overflow is out of range. */
    assert_true(dbl("1e-400") == 0.0);
    assert_true(dbl("-1e-400") == 0.0 && signbit(dbl("-1e-400")));
    assert_true(dbl("1e-99999999999999999999") == 0.0);
    assert_true(dbl("0e99999999999999999999") == 0.0);
    assert_true(!signbit(dbl("0.0e+28")) && !signbit(dbl("0.000")) && !signbit(dbl("0e-5")));
    double d = 3.0;
    assert_int_equal(jrpc_json_double(J("1e400"), &d), JRPC_ERANGE);
    assert_int_equal(jrpc_json_double(J("-1e400"), &d), JRPC_ERANGE);
    assert_int_equal(jrpc_json_double(J("1.8e308"), &d), JRPC_ERANGE);
    assert_int_equal(jrpc_json_double(J("1e99999999999999999999"), &d), JRPC_ERANGE);
    assert_true(d == 3.0);
    assert_int_equal(jrpc_json_double(J("\"1\""), &d), JRPC_ETYPE);
    assert_int_equal(jrpc_json_double(J("null"), &d), JRPC_ETYPE);
    assert_int_equal(jrpc_json_double(J("[1]"), &d), JRPC_ETYPE);
    assert_int_equal(jrpc_json_double((jrpc_json_t){NULL, 0}, &d), JRPC_ETYPE);
    assert_true(d == 3.0);
}

/* Numbers longer than any fixed buffer still round correctly: 2^53 + 1 is halfway between two
 * doubles (ties to even: 2^53), and any non-zero digit however far behind it tips it up. */
static void test_double_long(void **state)
{
    (void)state;
    char s[4096];
    assert_true(dbl("9007199254740993") == 9007199254740992.0);
    strcpy(s, "9007199254740993");
    memset(s + 16, '0', 2000);
    s[2016] = '\0';
    strcat(s, "e-2000");
    assert_true(dbl(s) == 9007199254740992.0);
    s[2016] = '1';
    s[2017] = '\0';
    strcat(s, "e-2001");
    assert_true(dbl(s) == 9007199254740994.0);
    /* The same with a fraction: 9007199254740993.000…0001 */
    strcpy(s, "9007199254740993.");
    memset(s + 17, '0', 3000);
    strcpy(s + 3017, "1");
    assert_true(dbl(s) == 9007199254740994.0);
    /* Many leading zeros in the fraction. */
    strcpy(s, "0.");
    memset(s + 2, '0', 3000);
    strcpy(s + 3002, "15e3001");
    assert_true(dbl(s) == 1.5);
    /* A long integer part overflows. */
    memset(s, '9', 400);
    s[400] = '\0';
    double d;
    assert_int_equal(jrpc_json_double(J(s), &d), JRPC_ERANGE);
    strcpy(s + 400, "e-100");
    assert_true(dbl(s) == 1e300);
}

static void test_bool(void **state)
{
    (void)state;
    int b = 7;
    assert_int_equal(jrpc_json_bool(J("true"), &b), 0);
    assert_int_equal(b, 1);
    assert_int_equal(jrpc_json_bool(J(" false\n"), &b), 0);
    assert_int_equal(b, 0);
    b = 7;
    assert_int_equal(jrpc_json_bool(J("null"), &b), JRPC_ETYPE);
    assert_int_equal(jrpc_json_bool(J("1"), &b), JRPC_ETYPE);
    assert_int_equal(jrpc_json_bool(J("\"true\""), &b), JRPC_ETYPE);
    assert_int_equal(jrpc_json_bool((jrpc_json_t){NULL, 0}, &b), JRPC_ETYPE);
    assert_int_equal(b, 7);
}

/* ---- Strings --------------------------------------------------------------------------------- */

static void test_string(void **state)
{
    (void)state;
    char buf[64];
    size_t n = 99;
    assert_int_equal(jrpc_json_string(J("\"\""), buf, sizeof buf, &n), 0);
    assert_int_equal(n, 0);
    assert_string_equal(buf, "");
    assert_int_equal(jrpc_json_string(J(" \"plain\" "), buf, sizeof buf, &n), 0);
    assert_int_equal(n, 5);
    assert_string_equal(buf, "plain");
    assert_int_equal(jrpc_json_string(J("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\""), buf, sizeof buf, &n), 0);
    assert_int_equal(n, 8);
    assert_memory_equal(buf, "\"\\/\b\f\n\r\t", 9);
    assert_int_equal(jrpc_json_string(J("\"\\u00e9\\u00E9\\u20ac\\ud83d\\ude00\\uD83D\\uDE00\""),
                                      buf, sizeof buf, &n),
                     0);
    assert_int_equal(n, 2 + 2 + 3 + 4 + 4);
    assert_memory_equal(buf, "\xc3\xa9\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf0\x9f\x98\x80", n + 1);
    /* Raw UTF-8 passes unchanged; \u0000 gives an embedded NUL. */
    assert_int_equal(jrpc_json_string(J("\"a\\u0000b\xe2\x82\xac\""), buf, sizeof buf, &n), 0);
    assert_int_equal(n, 6);
    assert_memory_equal(buf, "a\0b\xe2\x82\xac", 7);
    assert_int_equal(jrpc_json_string(J("1"), buf, sizeof buf, &n), JRPC_ETYPE);
    assert_int_equal(jrpc_json_string(J("[\"a\"]"), buf, sizeof buf, &n), JRPC_ETYPE);
    assert_int_equal(jrpc_json_string((jrpc_json_t){NULL, 0}, buf, sizeof buf, &n), JRPC_ETYPE);
}

static void test_string_small_buffer(void **state)
{
    (void)state;
    char buf[16];
    size_t n = 0;
    /* "hello": needs 6 bytes with the NUL. */
    assert_int_equal(jrpc_json_string(J("\"hello\""), buf, 5, &n), JRPC_ERANGE);
    assert_int_equal(n, 5);
    assert_int_equal(jrpc_json_string(J("\"hello\""), buf, 0, &n), JRPC_ERANGE);
    assert_int_equal(n, 5);
    /* A length query: buf NULL, cap 0. */
    n = 0;
    assert_int_equal(jrpc_json_string(J("\"h\\u00e9llo\""), NULL, 0, &n), JRPC_ERANGE);
    assert_int_equal(n, 6);
    assert_int_equal(jrpc_json_string(J("\"hello\""), buf, 6, &n), 0);
    assert_string_equal(buf, "hello");
    assert_int_equal(jrpc_json_string(J("\"\""), buf, 0, &n), JRPC_ERANGE);
    assert_int_equal(n, 0);
    assert_int_equal(jrpc_json_string(J("\"\""), buf, 1, &n), 0);
    /* Escapes shrink: 24 bytes of text, 4 bytes of value; the exact size is reported and enough. */
    const char *esc = "\"\\ud83d\\ude00\\u0041\\u0042\\n\"";
    assert_int_equal(jrpc_json_string(J(esc), buf, 4, &n), JRPC_ERANGE);
    assert_int_equal(n, 7);
    assert_int_equal(jrpc_json_string(J(esc), buf, 7, &n), JRPC_ERANGE);
    assert_int_equal(n, 7);
    memset(buf, 'z', sizeof buf);
    assert_int_equal(jrpc_json_string(J(esc), buf, 8, &n), 0);
    assert_int_equal(n, 7);
    assert_memory_equal(buf,
                        "\xf0\x9f\x98\x80"
                        "AB\n",
                        8);
    assert_int_equal(buf[8], 'z'); /* nothing written past cap */
}

static void test_string_eq(void **state)
{
    (void)state;
    assert_true(jrpc_json_string_eq(J("\"2.0\""), "2.0", 3));
    assert_true(jrpc_json_string_eq(J(" \"\\u0032.\\u0030\" "), "2.0", 3));
    assert_false(jrpc_json_string_eq(J("\"2.0\""), "2.", 2));
    assert_false(jrpc_json_string_eq(J("\"2.0\""), "2.00", 4));
    assert_false(jrpc_json_string_eq(J("\"\\u0032.\\u0030\""), "2.00", 4));
    assert_false(jrpc_json_string_eq(J("\"\\u0032.\\u0030\""), "2.", 2));
    assert_true(jrpc_json_string_eq(J("\"\""), "", 0));
    assert_true(jrpc_json_string_eq(J("\"a\\u0000b\""), "a\0b", 3));
    assert_false(jrpc_json_string_eq(J("\"a\\u0000b\""), "a", 1));
    assert_true(jrpc_json_string_eq(J("\"\\ud83d\\ude00!\""), "\xf0\x9f\x98\x80!", 5));
    assert_false(jrpc_json_string_eq(J("2.0"), "2.0", 3));
    assert_false(jrpc_json_string_eq(J("[\"2.0\"]"), "2.0", 3));
    assert_false(jrpc_json_string_eq((jrpc_json_t){NULL, 0}, "", 0));
}

/* ---- Bounds ---------------------------------------------------------------------------------- */

/* Every accessor over a view, whatever the view holds; the results are not checked here, only that
 * nothing reads past the view (the guard page) and nothing loops forever. */
static void poke(jrpc_json_t v)
{
    jrpc_json_t e;
    int64_t i;
    uint64_t u;
    double d;
    int b;
    char buf[8];
    size_t n;
    jrpc_json_iter_t it;
    (void)jrpc_json_type(v);
    (void)jrpc_json_count(v);
    (void)jrpc_json_at(v, 3, &e);
    (void)jrpc_json_get(v, "a", &e);
    (void)jrpc_json_get(v, "method", &e);
    if (jrpc_json_iter_init(&it, v) == 0) {
        jrpc_json_t k;
        while (jrpc_json_iter_next(&it, &k, &e))
            poke(e);
    }
    (void)jrpc_json_int64(v, &i);
    (void)jrpc_json_uint64(v, &u);
    (void)jrpc_json_double(v, &d);
    (void)jrpc_json_bool(v, &b);
    (void)jrpc_json_string(v, buf, sizeof buf, &n);
    (void)jrpc_json_string_eq(v, "ab", 2);
}

static void test_bounds(void **state)
{
    (void)state;
    static const char *texts[] = {
        "{\"a\": [1, {\"b\": \"x\\\"y\"}], \"method\": \"\\u006d\\ud83d\\ude00\", \"c\": -1.5e+3}",
        "[\"\\\\\", \"\\\"\", [[[]]], {}, true, false, null, 0, -0, 1e400]",
        "\"\\ud83d\\ude00\\u00e9\\n\"", "12345678901234567890",
        /* Garbage the accessors must survive (they are not validators). */
        "[", "{", "\"", "\"\\", "\"\\u", "\"\\u12", "\"\\ud83d\\u", "{\"a\"",
        "{\"a\":", "{\"a\" 1}", "[1,,2]", "[:]", "{:}", "[}", "{]", "-", "1e", "--", "]]]",
        "\"abc\\\"", "{\"a\":[1,2", "[\"\\\\\\\"", "{\"\\u006", "\\", ",", ":"};
    for (size_t t = 0; t < sizeof texts / sizeof texts[0]; t++) {
        size_t len = strlen(texts[t]);
        /* Every prefix, so truncation anywhere is covered too. */
        for (size_t n = 0; n <= len; n++)
            poke(guarded(texts[t], n));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type),        cmocka_unit_test(test_count),
        cmocka_unit_test(test_at),          cmocka_unit_test(test_get),
        cmocka_unit_test(test_iter),        cmocka_unit_test(test_int64),
        cmocka_unit_test(test_uint64),      cmocka_unit_test(test_double),
        cmocka_unit_test(test_double_long), cmocka_unit_test(test_bool),
        cmocka_unit_test(test_string),      cmocka_unit_test(test_string_small_buffer),
        cmocka_unit_test(test_string_eq),   cmocka_unit_test(test_bounds),
    };
    return cmocka_run_group_tests(tests, guard_setup, guard_teardown);
}
