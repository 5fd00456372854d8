/* SPDX-License-Identifier: MIT */
/* Unit tests of client addresses as keys and trusted_proxies lists (src/io/addr.c): IPv4 and
 * IPv6 words with and without a prefix length, what is refused, and matching at prefix
 * boundaries that do not fall on a byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <stdlib.h>
#include <string.h>

#include "io/internal.h"

static int matches(const char *list, const char *addr)
{
    jrpc__cidr_t *v = NULL;
    size_t n = 0;
    assert_int_equal(jrpc__cidr_list_parse(list, &v, &n), 0);
    unsigned char key[16];
    assert_true(jrpc__addr_key_parse(addr, strlen(addr), key) > 0);
    int m = jrpc__cidr_match(v, n, key);
    free(v);
    return m;
}

static void test_match(void **state)
{
    (void)state;
    assert_true(matches("127.0.0.1", "127.0.0.1"));
    assert_false(matches("127.0.0.1", "127.0.0.2"));
    assert_true(matches("10.0.0.0/8", "10.255.1.2"));
    assert_false(matches("10.0.0.0/8", "11.0.0.1"));
    /* /20: the boundary falls inside the third byte. */
    assert_true(matches("192.168.16.0/20", "192.168.31.255"));
    assert_false(matches("192.168.16.0/20", "192.168.32.0"));
    assert_true(matches("0.0.0.0/0", "203.0.113.9"));
    assert_false(matches("0.0.0.0/0", "2001:db8::1")); /* an IPv4 /0 is every IPv4 only */
    assert_true(matches("2001:db8::/32", "2001:db8:ffff::1"));
    assert_false(matches("2001:db8::/32", "2001:db9::1"));
    assert_true(matches("::1", "::1"));
    assert_true(matches(" 10.0.0.1 , ::1\t172.16.0.0/12", "172.31.0.1"));
    assert_false(matches("", "127.0.0.1"));
}

static void test_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {"10.0.0.0/33", "::/129",    "10.0.0.0/", "10.0.0/8",
                                      "localhost",   "1.2.3.4/x", "[::1]",     "1.2.3.4:80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(jrpc__cidr_list_parse(bad[i], NULL, NULL), JRPC_EINVAL);
    assert_int_equal(jrpc__cidr_list_parse(NULL, NULL, NULL), 0);
}

static void test_key_name(void **state)
{
    (void)state;
    unsigned char key[16];
    char buf[64];
    assert_int_equal(jrpc__addr_key_parse("203.0.113.7", 11, key), 4);
    assert_int_equal(jrpc__addr_key_name(key, buf, sizeof buf), 11);
    assert_string_equal(buf, "203.0.113.7");
    assert_int_equal(jrpc__addr_key_parse("2001:db8::1", 11, key), 6);
    jrpc__addr_key_name(key, buf, sizeof buf);
    assert_string_equal(buf, "2001:db8::1");
    assert_int_equal(jrpc__addr_key_parse("unknown", 7, key), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_key_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
