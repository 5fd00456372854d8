/* SPDX-License-Identifier: MIT */
/* Unit tests of the ledger's 256-bit integers (examples/ledger/uint256.c): parse and format at
 * every limb boundary up to 2^256-1, the canonical-form policy (no sign, no leading zeros, digits
 * only), overflow and underflow leaving the result untouched, and random values checked against
 * schoolbook arithmetic on decimal strings, an oracle that shares no code with the limbs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../../examples/ledger/uint256.c"

#define MAX256 "115792089237316195423570985008687907853269984665640564039457584007913129639935"
#define TWO256 "115792089237316195423570985008687907853269984665640564039457584007913129639936"

static u256_t parsed(const char *s)
{
    u256_t v;
    assert_int_equal(u256_parse(&v, s, strlen(s)), U256_OK);
    return v;
}

static void assert_formats(const u256_t *v, const char *want)
{
    char buf[U256_BUF];
    size_t n = u256_format(v, buf);
    assert_string_equal(buf, want);
    assert_int_equal(n, strlen(want));
}

static void assert_parse_fails(const char *s, size_t n, int want)
{
    u256_t v = {{1, 2, 3, 4}};
    assert_int_equal(u256_parse(&v, s, n), want);
    /* untouched on failure */
    assert_true(v.w[0] == 1 && v.w[1] == 2 && v.w[2] == 3 && v.w[3] == 4);
}

typedef int (*u256_op_t)(u256_t *r, const u256_t *a, const u256_t *b);

/* op(a, b) is refused (overflow or underflow) and leaves the result as it was. */
static void assert_op_refused(u256_op_t op, const u256_t *a, const u256_t *b)
{
    u256_t r = parsed("42");
    assert_int_equal(op(&r, a, b), -1);
    assert_formats(&r, "42");
}

static void test_parse_limbs(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        uint64_t w[4];
    } cases[] = {
        {"0", {0, 0, 0, 0}},
        {"1", {1, 0, 0, 0}},
        {"9223372036854775808", {1ull << 63, 0, 0, 0}},               /* 2^63 */
        {"14066156191713469572", {14066156191713469572ull, 0, 0, 0}}, /* seed 000's balance */
        {"18446744073709551615", {UINT64_MAX, 0, 0, 0}},              /* 2^64 - 1 */
        {"18446744073709551616", {0, 1, 0, 0}},                       /* 2^64 */
        {"340282366920938463463374607431768211455", {UINT64_MAX, UINT64_MAX, 0, 0}},
        {"340282366920938463463374607431768211456", {0, 0, 1, 0}},                    /* 2^128 */
        {"6277101735386680763835789423207666416102355444464034512896", {0, 0, 0, 1}}, /* 2^192 */
        {"57896044618658097711785492504343953926634992332820282019728792003956564819968",
         {0, 0, 0, 1ull << 63}}, /* 2^255 */
        {MAX256, {UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        u256_t v = parsed(cases[i].text);
        for (int k = 0; k < 4; k++)
            assert_true(v.w[k] == cases[i].w[k]);
        assert_formats(&v, cases[i].text);
    }
}

static void test_parse_range(void **state)
{
    (void)state;
    assert_parse_fails(TWO256, strlen(TWO256), U256_ERANGE);
    /* 2^256 - 1 with its last digit raised: still 78 digits, past the range */
    static const char past[] =
        "115792089237316195423570985008687907853269984665640564039457584007913129639939";
    assert_int_equal(strlen(past), 78);
    assert_parse_fails(past, strlen(past), U256_ERANGE);
    char nines[80];
    memset(nines, '9', 78);
    assert_parse_fails(nines, 78, U256_ERANGE);
    memset(nines, '9', 79);
    assert_parse_fails(nines, 79, U256_ERANGE);
    char big[200];
    big[0] = '1';
    memset(big + 1, '0', sizeof(big) - 1);
    assert_parse_fails(big, sizeof(big), U256_ERANGE);
    /* 10^77 has 78 digits and fits */
    u256_t v;
    assert_int_equal(u256_parse(&v, big, 78), U256_OK);
    char buf[U256_BUF];
    assert_int_equal(u256_format(&v, buf), 78);
    assert_memory_equal(buf, big, 78);
}

static void test_parse_policy(void **state)
{
    (void)state;
    assert_parse_fails("", 0, U256_EEMPTY);
    assert_parse_fails("00", 2, U256_ELEADING);
    assert_parse_fails("01", 2, U256_ELEADING);
    static const char zeros[] =
        "0000000000000000000000000000000000000000000000000000000000000000001";
    assert_parse_fails(zeros, strlen(zeros), U256_ELEADING);
    static const char *const not_digits[] = {
        "-1",  "+1",   " 1",    "1 ",  "1.0",
        "1e3", "0x10", "1_000", "abc", "\xef\xbc\x91" /* fullwidth 1 */,
        "-0"};
    for (size_t i = 0; i < sizeof(not_digits) / sizeof(not_digits[0]); i++)
        assert_parse_fails(not_digits[i], strlen(not_digits[i]), U256_EDIGIT);
    assert_parse_fails("1\0", 2, U256_EDIGIT); /* an embedded NUL is not a terminator */
    /* a bad character wins over length and leading zeros: the message names the real fault */
    assert_parse_fails("0x", 2, U256_EDIGIT);
    /* only n bytes are read */
    u256_t v;
    assert_int_equal(u256_parse(&v, "12345", 3), U256_OK);
    assert_formats(&v, "123");
    for (int e = U256_ERANGE; e <= U256_OK; e++)
        assert_non_null(u256_strerror(e));
    assert_string_equal(u256_strerror(U256_ELEADING), "has a leading zero");
}

static void test_add(void **state)
{
    (void)state;
    u256_t a = parsed("18446744073709551615"), one = parsed("1"), r;
    assert_int_equal(u256_add(&r, &a, &one), 0);
    assert_formats(&r, "18446744073709551616"); /* carry into limb 1 */
    a = parsed("6277101735386680763835789423207666416102355444464034512895"); /* 2^192 - 1 */
    assert_int_equal(u256_add(&r, &a, &one), 0);
    assert_formats(&r, "6277101735386680763835789423207666416102355444464034512896");
    assert_true(r.w[0] == 0 && r.w[1] == 0 && r.w[2] == 0 && r.w[3] == 1);

    u256_t max = parsed(MAX256), zero = parsed("0");
    assert_int_equal(u256_add(&r, &max, &zero), 0);
    assert_formats(&r, MAX256);
    /* overflow leaves the result as it was */
    assert_op_refused(u256_add, &max, &one);
    assert_op_refused(u256_add, &one, &max);
    assert_op_refused(u256_add, &max, &max);
    u256_t half =
        parsed("57896044618658097711785492504343953926634992332820282019728792003956564819968");
    assert_op_refused(u256_add, &half, &half); /* 2^255 + 2^255 = 2^256 */
    u256_t below =
        parsed("57896044618658097711785492504343953926634992332820282019728792003956564819967");
    assert_int_equal(u256_add(&r, &half, &below), 0);
    assert_formats(&r, MAX256);
    /* r may alias an operand */
    a = parsed("5");
    assert_int_equal(u256_add(&a, &a, &a), 0);
    assert_formats(&a, "10");
}

static void test_sub(void **state)
{
    (void)state;
    u256_t a = parsed("18446744073709551616"), one = parsed("1"), r;
    assert_int_equal(u256_sub(&r, &a, &one), 0);
    assert_formats(&r, "18446744073709551615"); /* borrow from limb 1 */
    a = parsed("6277101735386680763835789423207666416102355444464034512896"); /* 2^192 */
    assert_int_equal(u256_sub(&r, &a, &one), 0);
    assert_true(r.w[0] == UINT64_MAX && r.w[1] == UINT64_MAX && r.w[2] == UINT64_MAX &&
                r.w[3] == 0);
    u256_t max = parsed(MAX256), zero = parsed("0");
    assert_int_equal(u256_sub(&r, &max, &max), 0);
    assert_true(u256_is_zero(&r));
    assert_int_equal(u256_sub(&r, &max, &zero), 0);
    assert_formats(&r, MAX256);
    /* underflow leaves the result as it was */
    assert_op_refused(u256_sub, &zero, &one);
    assert_op_refused(u256_sub, &one, &max);
    u256_t x = parsed("14066156191713469572"), y = parsed("14066156191713469573");
    assert_op_refused(u256_sub, &x, &y);
    assert_int_equal(u256_sub(&r, &y, &x), 0);
    assert_formats(&r, "1");
    /* a borrow that runs through equal limbs: 2^128 + 5 - (2^64 + 7) */
    a = parsed("340282366920938463463374607431768211461");
    u256_t b = parsed("18446744073709551623");
    assert_int_equal(u256_sub(&r, &a, &b), 0);
    assert_formats(&r, "340282366920938463444927863358058659838");
    assert_int_equal(u256_sub(&a, &a, &a), 0); /* aliasing */
    assert_true(u256_is_zero(&a));
}

static void test_cmp(void **state)
{
    (void)state;
    static const char *const ordered[] = {
        "0",
        "1",
        "9223372036854775807",
        "18446744073709551615",
        "18446744073709551616",
        "18446744073709551617",
        "340282366920938463463374607431768211456",
        "6277101735386680763835789423207666416102355444464034512896",
        MAX256};
    size_t n = sizeof(ordered) / sizeof(ordered[0]);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++) {
            u256_t a = parsed(ordered[i]), b = parsed(ordered[j]);
            assert_int_equal(u256_cmp(&a, &b), i < j ? -1 : i > j ? 1 : 0);
        }
    }
    /* a higher limb decides even when the lower limbs say otherwise */
    u256_t a = {{UINT64_MAX, UINT64_MAX, UINT64_MAX, 0}}, b = {{0, 0, 0, 1}};
    assert_int_equal(u256_cmp(&a, &b), -1);
    assert_false(u256_is_zero(&b));
}

/* ---- Oracle: schoolbook arithmetic on decimal strings -------------------------------------- */

/* a + b as decimal text (no range limit). */
static void dec_add(const char *a, const char *b, char *out)
{
    char rev[128];
    size_t la = strlen(a), lb = strlen(b), n = 0;
    int carry = 0;
    for (size_t i = 0; i < la || i < lb || carry; i++) {
        int d = carry + (i < la ? a[la - 1 - i] - '0' : 0) + (i < lb ? b[lb - 1 - i] - '0' : 0);
        rev[n++] = (char)('0' + d % 10);
        carry = d / 10;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = rev[n - 1 - i];
    out[n] = '\0';
}

/* -1, 0, 1 comparing canonical decimal texts. */
static int dec_cmp(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la != lb)
        return la < lb ? -1 : 1;
    int c = strcmp(a, b);
    return c < 0 ? -1 : c > 0;
}

/* Decimal text of v by dividing by 10 one bit at a time (binary long division): slow, and
 * nothing like u256_format's 10^19 chunks. */
static void dec_of(const u256_t *v, char *out)
{
    uint64_t w[4] = {v->w[0], v->w[1], v->w[2], v->w[3]};
    char rev[100];
    size_t n = 0;
    do {
        unsigned rem = 0;
        for (int bit = 255; bit >= 0; bit--) {
            rem = rem << 1 | (unsigned)((w[bit / 64] >> (bit % 64)) & 1);
            w[bit / 64] &= ~(1ull << (bit % 64));
            if (rem >= 10) {
                rem -= 10;
                w[bit / 64] |= 1ull << (bit % 64);
            }
        }
        rev[n++] = (char)('0' + rem);
    } while (w[0] | w[1] | w[2] | w[3]);
    for (size_t i = 0; i < n; i++)
        out[i] = rev[n - 1 - i];
    out[n] = '\0';
}

static uint64_t rnd64(uint64_t *s)
{
    /* splitmix64: fixed seed, so a failure replays */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A random value with a random number of significant limbs and sometimes all-ones limbs, so
 * carries and borrows run across limb edges often. */
static u256_t rnd256(uint64_t *s)
{
    u256_t v = {{0, 0, 0, 0}};
    int limbs = (int)(rnd64(s) % 5);
    for (int k = 0; k < limbs; k++) {
        uint64_t r = rnd64(s);
        v.w[k] = r % 7 == 0 ? UINT64_MAX : r % 7 == 1 ? 0 : rnd64(s);
    }
    return v;
}

static void test_random_against_strings(void **state)
{
    (void)state;
    uint64_t seed = 0x2f0ea53f92252167ull;
    char sa[U256_BUF], sb[U256_BUF], want[128], got[U256_BUF];
    for (int i = 0; i < 20000; i++) {
        u256_t a = rnd256(&seed), b = rnd256(&seed), r = {{0}};
        dec_of(&a, want);
        u256_format(&a, sa);
        assert_string_equal(sa, want);
        u256_format(&b, sb);
        u256_t back = parsed(sa);
        assert_int_equal(u256_cmp(&back, &a), 0);

        assert_int_equal(u256_cmp(&a, &b), dec_cmp(sa, sb));

        dec_add(sa, sb, want);
        if (dec_cmp(want, MAX256) > 0) {
            assert_int_equal(u256_add(&r, &a, &b), -1);
        } else {
            assert_int_equal(u256_add(&r, &a, &b), 0);
            u256_format(&r, got);
            assert_string_equal(got, want);
            /* and back: (a + b) - b == a */
            u256_t d = {{0}}; /* gcc -O3 cannot see that cmocka asserts stop the test */
            assert_int_equal(u256_sub(&d, &r, &b), 0);
            assert_int_equal(u256_cmp(&d, &a), 0);
        }
        /* a - b: defined exactly when b <= a, and then b + (a - b) == a */
        if (dec_cmp(sa, sb) < 0) {
            assert_int_equal(u256_sub(&r, &a, &b), -1);
        } else {
            assert_int_equal(u256_sub(&r, &a, &b), 0);
            u256_format(&r, got);
            dec_add(got, sb, want);
            assert_string_equal(want, sa);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_limbs),
        cmocka_unit_test(test_parse_range),
        cmocka_unit_test(test_parse_policy),
        cmocka_unit_test(test_add),
        cmocka_unit_test(test_sub),
        cmocka_unit_test(test_cmp),
        cmocka_unit_test(test_random_against_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
