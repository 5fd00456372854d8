/* SPDX-License-Identifier: MIT */
/* Unit tests of API key sets (src/rpc/keys.c): what jrpc_key_check and jrpc_auth_check refuse,
 * finding keys by secret (prefixes and near misses are not keys), allow and deny patterns, and
 * which [cost] entry decides a method's cost. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <stdio.h>
#include <string.h>

#include "rpc/internal.h"

static jrpc_key_config_t key(const char *name, const char *secret)
{
    jrpc_key_config_t k;
    memset(&k, 0, sizeof k);
    k.name = name;
    k.secret = secret;
    return k;
}

static void test_checks(void **state)
{
    (void)state;
    jrpc_key_config_t k = key("alice", "0123456789abcdef");
    assert_null(jrpc_key_check(&k));
    k.secret = "0123456789abcde"; /* 15 */
    assert_non_null(jrpc_key_check(&k));
    k.secret = "0123456789abcdef/";
    assert_non_null(jrpc_key_check(&k));
    k.secret = "0123456789abcdef";
    k.name = "al ice";
    assert_non_null(jrpc_key_check(&k));
    k.name = "alice";
    k.methods = "eth_*x";
    assert_non_null(jrpc_key_check(&k));
    k.methods = "eth_*, tennis@ping";
    assert_null(jrpc_key_check(&k));
    k.burst = 5; /* without a rate */
    assert_non_null(jrpc_key_check(&k));
    k.rate = 1000000001ull;
    assert_non_null(jrpc_key_check(&k));

    jrpc_auth_config_t a = {0, "v2", 0, 0};
    assert_non_null(jrpc_auth_check(&a));
    a.path_prefix = "/v2?x";
    assert_non_null(jrpc_auth_check(&a));
    a.path_prefix = "/v2";
    assert_null(jrpc_auth_check(&a));
    assert_null(jrpc_auth_check(NULL));
}

static void test_find(void **state)
{
    (void)state;
    jrpc_keys_t *s = jrpc_keys_new(NULL);
    assert_non_null(s);
    char name[16], secret[32];
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof name, "k%d", i);
        snprintf(secret, sizeof secret, "secret-%04d-abcdefgh", i);
        jrpc_key_config_t k = key(name, secret);
        assert_int_equal(jrpc_keys_add(s, &k), 0);
    }
    jrpc_key_config_t dup = key("k5", "another-secret-123456");
    assert_int_equal(jrpc_keys_add(s, &dup), JRPC_EEXIST);
    dup = key("new", "secret-0005-abcdefgh");
    assert_int_equal(jrpc_keys_add(s, &dup), JRPC_EEXIST);

    const jrpc__key_t *k = jrpc__keys_find(s, "secret-0042-abcdefgh", 20);
    assert_non_null(k);
    assert_string_equal(k->name, "k42");
    assert_null(jrpc__keys_find(s, "secret-0042-abcdefg", 19));   /* a prefix */
    assert_null(jrpc__keys_find(s, "secret-0042-abcdefgi", 20));  /* one byte off */
    assert_null(jrpc__keys_find(s, "secret-0042-abcdefghX", 21)); /* longer */
    assert_null(jrpc__keys_find(s, "", 0));
    jrpc_keys_free(s);
}

static void test_allow(void **state)
{
    (void)state;
    jrpc_keys_t *s = jrpc_keys_new(NULL);
    jrpc_key_config_t c = key("a", "0123456789abcdef");
    c.methods = "eth_*, tennis@ping";
    c.deny = "eth_sign";
    assert_int_equal(jrpc_keys_add(s, &c), 0);
    const jrpc__key_t *k = jrpc__keys_find(s, "0123456789abcdef", 16);
    assert_non_null(k);
    assert_true(jrpc__key_allows(k, "eth_call", 8));
    assert_true(jrpc__key_allows(k, "tennis@ping", 11));
    assert_false(jrpc__key_allows(k, "tennis@pin", 10));
    assert_false(jrpc__key_allows(k, "eth_sign", 8)); /* deny wins */
    assert_true(jrpc__key_allows(k, "eth_signTransaction", 19));
    assert_false(jrpc__key_allows(k, "debug_trace", 11));
    jrpc_keys_free(s);
}

static void test_cost(void **state)
{
    (void)state;
    jrpc_keys_t *s = jrpc_keys_new(NULL);
    assert_int_equal(jrpc_keys_cost(s, "eth_*", 2), 0);
    assert_int_equal(jrpc_keys_cost(s, "eth_get*", 10), 0);
    assert_int_equal(jrpc_keys_cost(s, "eth_getLogs", 75), 0);
    assert_int_equal(jrpc_keys_cost(s, "net_version", 0), 0);
    assert_int_equal(jrpc_keys_cost(s, "eth_*", 3), JRPC_EEXIST);
    assert_int_equal(jrpc_keys_cost(s, "a*b", 3), JRPC_EINVAL);
    assert_int_equal(jrpc_keys_cost(s, "x", 1000000001ull), JRPC_EINVAL);
    assert_int_equal(jrpc__keys_cost(s, "eth_getLogs", 11), 75);       /* exact */
    assert_int_equal(jrpc__keys_cost(s, "eth_getBlock", 12), 10);      /* longest prefix */
    assert_int_equal(jrpc__keys_cost(s, "eth_call", 8), 2);            /* shorter prefix */
    assert_int_equal(jrpc__keys_cost(s, "net_version", 11), 0);        /* free */
    assert_int_equal(jrpc__keys_cost(s, "web3_clientVersion", 18), 1); /* default */
    jrpc_keys_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checks),
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_allow),
        cmocka_unit_test(test_cost),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
